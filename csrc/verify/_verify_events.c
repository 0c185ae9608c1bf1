/* streamexport._verify_events: the per-event loop of streamexport.verify, in C.
 *
 * verify reads an export as ijson's events, (name, value) tuples collected in a list. A
 * tensor's shape fixes the names of a run of its events in advance (verify's templates).
 * take_values checks a run against its template and copies the elements' values into a
 * numpy buffer, so that Python makes one call per group of events instead of touching every
 * event. It only says yes or no: on anything unexpected (a name that differs, a float token
 * in an integer tensor, an integer token in a float tensor, an integer beyond int64 or,
 * for uint64, outside [0, 2**64)) it returns False, and verify's Python path re-reads the
 * same group and words the failure.
 * So this file decides nothing that the Python path does not decide the same way.
 *
 * scan_structure finds where the tensors of an export begin and end, so that verify can
 * read parts of it in parallel; its loop is se_scan.c's, below this glue.
 *
 * Separate from streamexport._speedups (the formatter's glue). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "se_scan.h"

/* One element value into out[index]; 0 when its Python type is the one of ``kind``. */
static int store_value(PyObject *value, char kind, char *out, Py_ssize_t index)
{
    if (kind == 'f') {
        if (!PyFloat_CheckExact(value))
            return -1;
        ((double *)out)[index] = PyFloat_AS_DOUBLE(value);
        return 0;
    }
    if (kind == 'i') {
        if (!PyLong_CheckExact(value))
            return -1;
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
        ((int64_t *)out)[index] = (int64_t)v;
        return 0;
    }
    if (kind == 'u') {
        if (!PyLong_CheckExact(value))
            return -1;
        unsigned long long v = PyLong_AsUnsignedLongLong(value);  /* negative: an error */
        if (v == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return -1;
        }
        ((uint64_t *)out)[index] = (uint64_t)v;
        return 0;
    }
    if (value != Py_True && value != Py_False)     /* kind 'b' */
        return -1;
    ((uint8_t *)out)[index] = value == Py_True;
    return 0;
}

/* The events' names, by the letters of a template: '[' start_array, ']' end_array and 'v'
 * an element, named number or (kind 'b') boolean. */
enum { START, END, NUMBER, BOOLEAN, NAMES };
static const char *const name_text[NAMES] = {"start_array", "end_array", "number", "boolean"};

/* ijson passes the same few name objects again and again: the one last found equal to each
 * name is remembered, so that nearly every test is a pointer comparison. */
static PyObject *known_name[NAMES];

static int is_name(PyObject *name, int which)
{
    if (name == known_name[which])
        return 1;
    if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, name_text[which]) != 0)
        return 0;
    Py_INCREF(name);
    Py_XSETREF(known_name[which], name);
    return 1;
}

PyDoc_STRVAR(take_values_doc,
"take_values(events, start, template, kind, out) -> bool\n\n"
"Whether events[start:start + len(template)] have the names that the letters of\n"
"``template`` (bytes) stand for, '[' start_array, ']' end_array, 'v' an element (named\n"
"boolean for kind 'b', else number), and every element's value is of ``kind``: 'f' a float,\n"
"'i' an int within int64, 'u' an int within uint64, 'b' a bool. When they do, the elements'\n"
"values are written in order into ``out`` (a writable buffer of float64, int64, uint64 or\n"
"one-byte bools), which must hold\n"
"exactly as many values as ``template`` has 'v's. False when ``events`` ends early.");

static PyObject *take_values(PyObject *self, PyObject *args)
{
    PyObject *events;
    Py_ssize_t start;
    Py_buffer template, out;
    int kind;
    if (!PyArg_ParseTuple(args, "O!ny*Cw*", &PyList_Type, &events, &start, &template, &kind,
                          &out))
        return NULL;
    Py_ssize_t itemsize = kind == 'b' ? 1 : 8;
    if ((kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') || out.len % itemsize != 0) {
        PyErr_Format(PyExc_ValueError, "kind must be 'f', 'i', 'u' or 'b' with an output of "
                     "whole items (8, 8, 8, 1 bytes), not kind %d with %zd bytes", kind, out.len);
        goto error;
    }
    const char *letters = template.buf;
    int element = kind == 'b' ? BOOLEAN : NUMBER;
    Py_ssize_t capacity = out.len / itemsize;
    Py_ssize_t length = template.len;
    Py_ssize_t stored = 0;
    int fits = start >= 0 && start <= PyList_GET_SIZE(events) - length;
    for (Py_ssize_t i = 0; fits && i < length; i++) {
        PyObject *event = PyList_GET_ITEM(events, start + i);
        if (!PyTuple_CheckExact(event) || PyTuple_GET_SIZE(event) != 2) {
            fits = 0;
            break;
        }
        PyObject *name = PyTuple_GET_ITEM(event, 0);
        char letter = letters[i];
        if (letter == 'v') {
            if (stored == capacity) {
                PyErr_SetString(PyExc_ValueError, "out holds fewer values than template has 'v's");
                goto error;
            }
            fits = is_name(name, element)
                   && store_value(PyTuple_GET_ITEM(event, 1), (char)kind, out.buf, stored) == 0;
            stored++;
        } else if (letter == '[' || letter == ']') {
            fits = is_name(name, letter == '[' ? START : END);
        } else {
            PyErr_Format(PyExc_ValueError, "template byte %d is not '[', ']' or 'v'",
                         (unsigned char)letter);
            goto error;
        }
    }
    if (fits && stored != capacity) {
        PyErr_SetString(PyExc_ValueError, "out holds more values than template has 'v's");
        goto error;
    }
    PyBuffer_Release(&template);
    PyBuffer_Release(&out);
    return PyBool_FromLong(fits);
error:
    PyBuffer_Release(&template);
    PyBuffer_Release(&out);
    return NULL;
}

PyDoc_STRVAR(scan_structure_doc,
"scan_structure(data, max_depth, base=0, state=(0, False, False))\n"
"    -> (state, broken, offsets, marks)\n\n"
"The structural bytes ({ } [ ] , :) of the JSON text in the buffer data that lie outside\n"
"strings at a nesting depth of at most max_depth (csrc/verify/se_scan.h): offsets (base\n"
"plus the position in data) as the bytes of an int64 array, marks as bytes, one per\n"
"offset. A text may come in pieces: state (depth, in a string, after a backslash) is where\n"
"the scan of data ended, to pass with the next piece. broken: a bracket closed that was\n"
"never opened (the marks stop there). The text was whole when, after its last piece,\n"
"state is (0, False, False) and nothing broke. Runs without the GIL.");

static PyObject *scan_structure(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"data", "max_depth", "base", "state", NULL};
    Py_buffer data;
    long max_depth;
    long long base = 0;
    long depth = 0;
    int in_string = 0, escaped = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*l|L(lpp):scan_structure", keywords,
                                     &data, &max_depth, &base, &depth, &in_string, &escaped))
        return NULL;
    se_scan_state state = {0, depth, in_string, escaped, 0};
    size_t count = 0, capacity = 1 << 12;
    int64_t *offsets = PyMem_RawMalloc(capacity * sizeof *offsets);
    unsigned char *marks = PyMem_RawMalloc(capacity);
    int failed = offsets == NULL || marks == NULL || depth < 0;
    Py_BEGIN_ALLOW_THREADS
    while (!failed && !state.broken && state.position < (size_t)data.len) {
        if (count == capacity) {
            capacity *= 2;
            int64_t *more_offsets = PyMem_RawRealloc(offsets, capacity * sizeof *offsets);
            if (more_offsets != NULL)
                offsets = more_offsets;
            unsigned char *more_marks = PyMem_RawRealloc(marks, capacity);
            if (more_marks != NULL)
                marks = more_marks;
            failed = more_offsets == NULL || more_marks == NULL;
            if (failed)
                break;
        }
        count += se_scan(data.buf, (size_t)data.len, max_depth, &state, offsets + count,
                         marks + count, capacity - count);
    }
    for (size_t i = 0; !failed && i < count; i++)
        offsets[i] += base;
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    PyObject *result = NULL;
    if (failed) {
        if (depth < 0)
            PyErr_SetString(PyExc_ValueError, "state's depth is negative");
        else
            PyErr_NoMemory();
    } else {
        result = Py_BuildValue("((lNN)Ny#y#)", state.depth, PyBool_FromLong(state.in_string),
                               PyBool_FromLong(state.escaped), PyBool_FromLong(state.broken),
                               (const char *)offsets, (Py_ssize_t)(count * sizeof *offsets),
                               (const char *)marks, (Py_ssize_t)count);
    }
    PyMem_RawFree(offsets);
    PyMem_RawFree(marks);
    return result;
}

static PyMethodDef methods[] = {
    {"take_values", take_values, METH_VARARGS, take_values_doc},
    {"scan_structure", (PyCFunction)(void (*)(void))scan_structure,
     METH_VARARGS | METH_KEYWORDS, scan_structure_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "streamexport._verify_events",
    "The per-event loop of streamexport.verify (see streamexport.verify).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__verify_events(void)
{
    return PyModule_Create(&module);
}
