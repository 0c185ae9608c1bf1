/* streamexport._crc32: CPython glue of se_crc32 (se_crc32.h), a drop-in for zlib.crc32.
 *
 * crc32(data, value=0) takes what zlib.crc32 takes (any C-contiguous buffer, a value that
 * is masked to 32 bits) and returns the same int; the GIL is released while it reads a
 * large buffer, so the zip check's thread does not hold up the formatter's. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#include "se_crc32.h"

/* Below this the computation is shorter than handing the GIL over and back. */
#define GIL_RELEASE_BYTES 4096

PyDoc_STRVAR(crc32_doc,
"crc32(data, value=0, /) -> int\n\n"
"The CRC-32 of data continuing from value, exactly as zlib.crc32(data, value).");

static PyObject *crc32(PyObject *self, PyObject *args)
{
    Py_buffer data;
    PyObject *value_obj = NULL;
    if (!PyArg_ParseTuple(args, "y*|O:crc32", &data, &value_obj))
        return NULL;
    uint32_t value = 0;
    if (value_obj != NULL) {
        /* zlib takes any int and keeps its low 32 bits */
        unsigned long v = PyLong_AsUnsignedLongMask(value_obj);
        if (v == (unsigned long)-1 && PyErr_Occurred()) {
            PyBuffer_Release(&data);
            return NULL;
        }
        value = (uint32_t)v;
    }
    const void *buf = data.buf;
    size_t len = (size_t)data.len;
    if (len >= GIL_RELEASE_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        value = se_crc32(value, buf, len);
        Py_END_ALLOW_THREADS
    } else {
        value = se_crc32(value, buf, len);
    }
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLong(value);
}

PyDoc_STRVAR(combine_doc,
"combine(crc_a, crc_b, length_b, /) -> int\n\n"
"The CRC-32 of a + b from crc32(a), crc32(b) and len(b), without b's bytes.");

static PyObject *combine(PyObject *self, PyObject *args)
{
    unsigned long long crc_a, crc_b;
    PyObject *length_obj;
    if (!PyArg_ParseTuple(args, "KKO:combine", &crc_a, &crc_b, &length_obj))
        return NULL;
    unsigned long long length_b = PyLong_AsUnsignedLongLong(length_obj);  /* < 0: OverflowError */
    if (length_b == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (crc_a > 0xffffffffULL || crc_b > 0xffffffffULL) {
        PyErr_SetString(PyExc_ValueError, "combine: a CRC-32 is below 2**32");
        return NULL;
    }
    return PyLong_FromUnsignedLong(se_crc32_combine((uint32_t)crc_a, (uint32_t)crc_b, length_b));
}

PyDoc_STRVAR(implementation_doc,
"implementation() -> str\n\n"
"The path crc32 takes: 'vpclmulqdq', 'pclmulqdq' or 'table'.");

static PyObject *implementation(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(se_crc32_name(se_crc32_selected()));
}

PyDoc_STRVAR(set_implementation_doc,
"_set_implementation(name) -> str\n\n"
"For tests: make crc32 take the path name (ValueError if unknown or not supported by\n"
"this CPU) and return the previous one. Not while other threads compute CRCs.");

static PyObject *set_implementation(PyObject *self, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL)
        return NULL;
    for (int impl = 0; impl < SE_CRC32_IMPLS; impl++) {
        if (strcmp(name, se_crc32_name((se_crc32_impl)impl)) != 0)
            continue;
        const char *previous = se_crc32_name(se_crc32_selected());
        if (se_crc32_select((se_crc32_impl)impl) != 0) {
            PyErr_Format(PyExc_ValueError, "CRC-32 path %R is not supported by this CPU", arg);
            return NULL;
        }
        return PyUnicode_FromString(previous);
    }
    PyErr_Format(PyExc_ValueError, "no CRC-32 path is called %R", arg);
    return NULL;
}

static PyMethodDef methods[] = {
    {"crc32", crc32, METH_VARARGS, crc32_doc},
    {"combine", combine, METH_VARARGS, combine_doc},
    {"implementation", implementation, METH_NOARGS, implementation_doc},
    {"_set_implementation", set_implementation, METH_O, set_implementation_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "streamexport._crc32",
    "A CRC-32 identical to zlib.crc32, faster (see streamexport.zipcheck).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__crc32(void)
{
    /* chosen here, before any thread computes; the switch that turns off the formatter's
     * AVX-512 path makes this the table */
    const char *no_simd = getenv("STREAMEXPORT_DISABLE_SIMD");
    int table = no_simd && *no_simd && strcmp(no_simd, "0") != 0;
    se_crc32_select(table ? SE_CRC32_TABLE : se_crc32_best());
    return PyModule_Create(&module);
}
