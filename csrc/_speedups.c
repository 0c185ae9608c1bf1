/* streamexport._speedups: the CPython glue of the C core, and the only file that sees
 * Python. It checks the arguments, sizes the output (a new bytes object, or a buffer the
 * caller reuses), releases the GIL around the formatting loop and turns each status of the
 * core into its own exception class, imported from streamexport.errors so that C and the
 * pure-Python twin raise the same ones. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "se_format.h"
#include "se_lut.h"
#include "se_memory.h"
#include "se_simd.h"

#include <stdlib.h>
#include <string.h>

static PyObject *UnsupportedDtypeError;
static PyObject *BufferSizeError;
static PyObject *ShapeError;
static PyObject *NonFiniteError;

/* The UTF-8 text of a str without embedded NULs ("exact\0" is no name), else NULL. */
static const char *plain_name(PyObject *value)
{
    Py_ssize_t size;
    const char *name = PyUnicode_Check(value) ? PyUnicode_AsUTF8AndSize(value, &size) : NULL;
    if (name == NULL || strlen(name) != (size_t)size) {
        PyErr_Clear();
        return NULL;
    }
    return name;
}

/* An option string: 0 and *out set, or -1 with ValueError naming the choices. */
static int parse_option(PyObject *value, const char *what, const char *choices,
                        int (*lookup)(const char *, void *), void *out)
{
    const char *name = plain_name(value);
    if (name == NULL || lookup(name, out) != 0) {
        PyErr_Format(PyExc_ValueError, "%s must be one of %s, not %R", what, choices, value);
        return -1;
    }
    return 0;
}

static int lookup_format(const char *name, void *out) { return se_float_format_from_name(name, out); }
static int lookup_nonfinite(const char *name, void *out) { return se_nonfinite_from_name(name, out); }

/* An int (anything with __index__) into an int64_t; ShapeError when it does not fit. */
static int parse_int64(PyObject *value, const char *what, int64_t *out)
{
    PyObject *index = PyNumber_Index(value);
    if (index == NULL)
        return -1;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
    Py_DECREF(index);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow) {
        PyErr_Format(ShapeError, "%s %R is out of range (over 2**63 - 1 in size)", what, value);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* shape -> a new array of ndim int64 (PyMem_Free it), or NULL with an exception set. */
static int64_t *parse_shape(PyObject *shape, int *ndim)
{
    PyObject *seq = PySequence_Fast(shape, "shape must be a sequence of ints");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > INT_MAX) {
        Py_DECREF(seq);
        PyErr_SetString(ShapeError, "shape has too many dimensions");
        return NULL;
    }
    int64_t *dims = PyMem_Malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    if (dims == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (parse_int64(PySequence_Fast_GET_ITEM(seq, i), "dimension", &dims[i]) != 0) {
            Py_DECREF(seq);
            PyMem_Free(dims);
            return NULL;
        }
    }
    Py_DECREF(seq);
    *ndim = (int)n;
    return dims;
}

/* NonFiniteError(message, index) for the element at flat index bad_index. */
static PyObject *raise_nonfinite(const se_chunk *chunk, int64_t bad_index, const void *data)
{
    size_t size = se_dtype_itemsize(chunk->dtype);
    const unsigned char *p = (const unsigned char *)data + (size_t)(bad_index - chunk->start) * size;
    char kind;  /* 'N', '+', '-' as in the token tables */
    if (chunk->dtype == SE_FLOAT64 || chunk->dtype == SE_FLOAT32) {
        double v;
        if (chunk->dtype == SE_FLOAT64) {
            memcpy(&v, p, 8);
        } else {
            float f;
            memcpy(&f, p, 4);
            v = f;
        }
        kind = Py_IS_NAN(v) ? 'N' : v > 0 ? '+' : '-';
    } else {
        uint16_t bits = p[0];
        if (size == 2)
            memcpy(&bits, p, 2);
        kind = se_lut_get(chunk->dtype, chunk->float_format)[bits].text[0];
    }
    const char *name = kind == 'N' ? "nan" : kind == '+' ? "inf" : "-inf";
    PyObject *exc;
    PyObject *message = PyUnicode_FromFormat("non-finite value %s at flat index %lld", name,
                                             (long long)bad_index);
    if (message == NULL)
        return NULL;
    exc = PyObject_CallFunction(NonFiniteError, "OL", message, (long long)bad_index);
    Py_DECREF(message);
    if (exc != NULL) {
        PyErr_SetObject(NonFiniteError, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* ShapeError naming what is wrong with the shape or the range (the same words as the twin).
 * se_chunk_check decides; asking it about the empty range [0, 0) tells a bad shape from a
 * range outside a good one. */
static PyObject *raise_shape_error(const se_chunk *chunk)
{
    se_chunk whole = *chunk;
    int64_t total;
    whole.start = 0;
    whole.count = 0;
    if (se_chunk_check(&whole, &total) == SE_OK) {
        PyErr_Format(ShapeError, "range [%lld, %lld + %lld) is outside a tensor of %lld elements",
                     (long long)chunk->start, (long long)chunk->start, (long long)chunk->count,
                     (long long)total);
        return NULL;
    }
    for (int d = 0; d < chunk->ndim; d++) {
        if (chunk->shape[d] < 0) {
            PyErr_Format(ShapeError, "negative dimension %lld in shape",
                         (long long)chunk->shape[d]);
            return NULL;
        }
    }
    PyErr_SetString(ShapeError, "shape has more than 2**63 - 1 elements");
    return NULL;
}

static PyObject *raise_status(se_status st, const se_chunk *chunk, int64_t bad_index,
                              const void *data)
{
    switch (st) {
    case SE_ERR_SHAPE:
        return raise_shape_error(chunk);
    case SE_ERR_TOO_LARGE:
        return PyErr_NoMemory();
    case SE_ERR_BUFFER:
        PyErr_SetString(BufferSizeError, "output buffer smaller than the chunk needs");
        return NULL;
    case SE_ERR_NONFINITE:
        return raise_nonfinite(chunk, bad_index, data);
    default:
        PyErr_Format(PyExc_SystemError, "formatter status %d", (int)st);
        return NULL;
    }
}

/* The arguments every entry point shares: dtype, shape, start, count and the two options.
 * On success returns 0 with *chunk filled (chunk->shape owned by the caller: PyMem_Free it)
 * and the range checked; else -1 with an exception set and nothing to free. Errors come in
 * the contract's order: dtype, options, shape and range. */
static int parse_chunk(PyObject *dtype_obj, PyObject *shape_obj, PyObject *start_obj,
                       PyObject *count_obj, PyObject *format_obj, PyObject *nonfinite_obj,
                       se_chunk *chunk)
{
    chunk->float_format = SE_FORMAT_EXACT;
    chunk->nonfinite = SE_NONFINITE_ERROR;
    chunk->shape = NULL;
    const char *dtype_name = plain_name(dtype_obj);
    if (dtype_name == NULL || se_dtype_from_name(dtype_name, &chunk->dtype) != 0) {
        PyErr_Format(UnsupportedDtypeError, "unsupported dtype: %R", dtype_obj);
        return -1;
    }
    if (format_obj != NULL &&
        parse_option(format_obj, "float_format", "('exact', 'shortest')", lookup_format,
                     &chunk->float_format) != 0)
        return -1;
    if (nonfinite_obj != NULL &&
        parse_option(nonfinite_obj, "nonfinite", "('error', 'null', 'string', 'literal')",
                     lookup_nonfinite, &chunk->nonfinite) != 0)
        return -1;
    int64_t *shape = parse_shape(shape_obj, &chunk->ndim);
    if (shape == NULL)
        return -1;
    chunk->shape = shape;
    int64_t total;
    se_status st;
    if (parse_int64(start_obj, "start", &chunk->start) != 0 ||
        parse_int64(count_obj, "count", &chunk->count) != 0)
        goto fail;
    if ((st = se_chunk_check(chunk, &total)) != SE_OK) {
        raise_status(st, chunk, 0, NULL);
        goto fail;
    }
    return 0;
fail:
    PyMem_Free(shape);
    chunk->shape = NULL;
    return -1;
}

/* The output size se_format_chunk needs for a checked chunk, or -1 with an exception set. */
static int chunk_capacity_of(const se_chunk *chunk, size_t *capacity)
{
    se_status st = se_chunk_capacity(chunk, capacity);
    if (st != SE_OK) {
        raise_status(st, chunk, 0, NULL);
        return -1;
    }
    if (*capacity > (size_t)PY_SSIZE_T_MAX) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Gets the input buffer: C-contiguous and exactly count elements long. 0, or -1 with an
 * exception set and view->obj NULL. */
static int get_data(PyObject *data, const se_chunk *chunk, const char *dtype_name,
                    Py_buffer *view)
{
    if (PyObject_GetBuffer(data, view, PyBUF_STRIDED_RO) != 0) {
        view->obj = NULL;
        return -1;
    }
    size_t itemsize = se_dtype_itemsize(chunk->dtype);
    if (!PyBuffer_IsContiguous(view, 'C')) {
        PyErr_SetString(BufferSizeError, "the data buffer is not C-contiguous");
    } else if ((uint64_t)chunk->count > (uint64_t)PY_SSIZE_T_MAX / itemsize ||
               view->len != (Py_ssize_t)((size_t)chunk->count * itemsize)) {
        PyErr_Format(BufferSizeError, "buffer of %zd bytes for %lld %s elements (%llu bytes)",
                     view->len, (long long)chunk->count, dtype_name,
                     (unsigned long long)chunk->count * itemsize);
    } else {
        return 0;
    }
    PyBuffer_Release(view);
    view->obj = NULL;
    return -1;
}

/* Chunks of fewer elements keep the GIL: they take microseconds, and a thread that lets
 * the GIL go while another one runs Python may wait a whole switch interval (5 ms) to get
 * it back -- the exporter's batches of small tensors made 2 threads slower than 1. */
#define GIL_RELEASE_ELEMENTS 4096

/* Formats the chunk into out[0..capacity), with the GIL released unless the chunk is
 * small; 0 and *length, or -1 with an exception set. */
static int format_unlocked(const se_chunk *chunk, const Py_buffer *view, char *out,
                           size_t capacity, size_t *length)
{
    int64_t bad_index = 0;
    se_status st;
    if (chunk->count >= GIL_RELEASE_ELEMENTS) {
        Py_BEGIN_ALLOW_THREADS
        st = se_format_chunk(chunk, view->buf, out, capacity, length, &bad_index);
        Py_END_ALLOW_THREADS
    } else {
        st = se_format_chunk(chunk, view->buf, out, capacity, length, &bad_index);
    }
    if (st != SE_OK) {
        raise_status(st, chunk, bad_index, view->buf);
        return -1;
    }
    return 0;
}

/* What format_chunk and format_into share: the checked chunk, the data buffer and the
 * output size it needs. open_call returns 0 (close_call it afterwards) or -1 with an
 * exception set and nothing to close. */
typedef struct {
    se_chunk chunk;
    Py_buffer view;
    size_t capacity;
} call_state;

static int open_call(PyObject *data, PyObject *dtype_obj, PyObject *shape_obj,
                     PyObject *start_obj, PyObject *count_obj, PyObject *format_obj,
                     PyObject *nonfinite_obj, call_state *call)
{
    if (parse_chunk(dtype_obj, shape_obj, start_obj, count_obj, format_obj, nonfinite_obj,
                    &call->chunk) != 0)
        return -1;
    if (get_data(data, &call->chunk, plain_name(dtype_obj), &call->view) == 0) {
        if (chunk_capacity_of(&call->chunk, &call->capacity) == 0)
            return 0;
        PyBuffer_Release(&call->view);
    }
    PyMem_Free((void *)call->chunk.shape);
    return -1;
}

static void close_call(call_state *call)
{
    PyBuffer_Release(&call->view);
    PyMem_Free((void *)call->chunk.shape);
}

PyDoc_STRVAR(format_chunk_doc,
"format_chunk(data, dtype, shape, start, count, float_format=\"exact\", nonfinite=\"error\")"
" -> bytes\n\n"
"Format elements [start, start + count) of a tensor as its slice of\n"
"json.dumps(t.tolist(), separators=(\",\", \":\")). See streamexport.formatter for the contract.");

static PyObject *format_chunk(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"data", "dtype", "shape", "start", "count", "float_format",
                               "nonfinite", NULL};
    PyObject *data, *dtype_obj, *shape_obj, *start_obj, *count_obj;
    PyObject *format_obj = NULL, *nonfinite_obj = NULL;
    call_state call;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOO|OO:format_chunk", keywords, &data,
                                     &dtype_obj, &shape_obj, &start_obj, &count_obj,
                                     &format_obj, &nonfinite_obj) ||
        open_call(data, dtype_obj, shape_obj, start_obj, count_obj, format_obj, nonfinite_obj,
                  &call) != 0)
        return NULL;
    size_t length = 0;
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)call.capacity);
    if (result != NULL) {
        char *out = PyBytes_AS_STRING(result);
        se_advise_huge_pages(out, call.capacity);
        if (format_unlocked(&call.chunk, &call.view, out, call.capacity, &length) != 0)
            Py_CLEAR(result);
        else
            _PyBytes_Resize(&result, (Py_ssize_t)length);  /* on failure: NULL, MemoryError */
    }
    close_call(&call);
    return result;
}

PyDoc_STRVAR(format_into_doc,
"format_into(out, data, dtype, shape, start, count, float_format=\"exact\","
" nonfinite=\"error\") -> int\n\n"
"format_chunk, but the text goes to the start of the writable, C-contiguous buffer out,\n"
"which must hold at least chunk_capacity(dtype, shape, start, count) bytes (else\n"
"BufferSizeError, checked after the data buffer). Returns the length of the text. A buffer\n"
"reused from chunk to chunk costs no fresh pages. On an error the content of out is\n"
"unspecified.");

static PyObject *format_into(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"out", "data", "dtype", "shape", "start", "count",
                               "float_format", "nonfinite", NULL};
    PyObject *out_obj, *data, *dtype_obj, *shape_obj, *start_obj, *count_obj;
    PyObject *format_obj = NULL, *nonfinite_obj = NULL;
    call_state call;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOO|OO:format_into", keywords, &out_obj,
                                     &data, &dtype_obj, &shape_obj, &start_obj, &count_obj,
                                     &format_obj, &nonfinite_obj) ||
        open_call(data, dtype_obj, shape_obj, start_obj, count_obj, format_obj, nonfinite_obj,
                  &call) != 0)
        return NULL;
    PyObject *result = NULL;
    size_t length = 0;
    Py_buffer out;
    /* Holding the buffer's export keeps a bytearray from being resized while we write. */
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) == 0) {
        if ((size_t)out.len < call.capacity)
            PyErr_Format(BufferSizeError, "output buffer of %zd bytes, the chunk needs %zu",
                         out.len, call.capacity);
        else if (format_unlocked(&call.chunk, &call.view, out.buf, (size_t)out.len,
                                 &length) == 0)
            result = PyLong_FromSize_t(length);
        PyBuffer_Release(&out);
    }
    close_call(&call);
    return result;
}

PyDoc_STRVAR(chunk_capacity_doc,
"chunk_capacity(dtype, shape, start, count) -> int\n\n"
"The bytes format_into needs for this chunk: its longest possible text plus working room.");

static PyObject *chunk_capacity(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"dtype", "shape", "start", "count", NULL};
    PyObject *dtype_obj, *shape_obj, *start_obj, *count_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO:chunk_capacity", keywords, &dtype_obj,
                                     &shape_obj, &start_obj, &count_obj))
        return NULL;
    se_chunk chunk;
    if (parse_chunk(dtype_obj, shape_obj, start_obj, count_obj, NULL, NULL, &chunk) != 0)
        return NULL;
    size_t capacity;
    PyObject *result = NULL;
    if (chunk_capacity_of(&chunk, &capacity) == 0)
        result = PyLong_FromSize_t(capacity);
    PyMem_Free((void *)chunk.shape);
    return result;
}

PyDoc_STRVAR(simd_doc,
"simd() -> bool\n\n"
"True when float32 (both modes) and float64 elements are converted eight at a time with\n"
"AVX-512: compiled in, supported by this CPU, not turned off. Same bytes either way.");

static PyObject *simd(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(se_simd_enabled());
}

PyDoc_STRVAR(set_simd_doc,
"set_simd(enabled) -> bool\n\n"
"Turns the vector paths (AVX-512 and AVX2) off, or back on where the CPU supports them;\n"
"returns the previous state of simd(). For tests, which run every path on one machine.\n"
"Not for use while formatting.");

/* A switch of vector paths: arg's truth to `set`, its previous state back as a bool. */
static PyObject *switch_paths(PyObject *arg, int (*set)(int))
{
    int on = PyObject_IsTrue(arg);
    if (on < 0)
        return NULL;
    return PyBool_FromLong(set(on));
}

static PyObject *set_simd(PyObject *self, PyObject *arg)
{
    return switch_paths(arg, se_simd_set_enabled);
}

PyDoc_STRVAR(set_simd_avx512_doc,
"set_simd_avx512(enabled) -> bool\n\n"
"Turns the AVX-512 paths alone off, or back on where the CPU supports them, leaving the\n"
"AVX2 ones, as on a CPU without AVX-512; returns the previous state of simd(). For tests.");

static PyObject *set_simd_avx512(PyObject *self, PyObject *arg)
{
    return switch_paths(arg, se_simd_set_avx512);
}

PyDoc_STRVAR(simd_avx2_doc,
"simd_avx2() -> bool\n\n"
"True when the AVX2 paths (the float kernels where AVX-512 is missing, the small dtypes'\n"
"table copy) may be used: supported by this CPU, not turned off. Same bytes either way.");

static PyObject *simd_avx2(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(se_simd_avx2_enabled());
}

static PyMethodDef methods[] = {
    {"format_chunk", (PyCFunction)(void (*)(void))format_chunk, METH_VARARGS | METH_KEYWORDS,
     format_chunk_doc},
    {"format_into", (PyCFunction)(void (*)(void))format_into, METH_VARARGS | METH_KEYWORDS,
     format_into_doc},
    {"chunk_capacity", (PyCFunction)(void (*)(void))chunk_capacity,
     METH_VARARGS | METH_KEYWORDS, chunk_capacity_doc},
    {"simd", simd, METH_NOARGS, simd_doc},
    {"set_simd", set_simd, METH_O, set_simd_doc},
    {"set_simd_avx512", set_simd_avx512, METH_O, set_simd_avx512_doc},
    {"simd_avx2", simd_avx2, METH_NOARGS, simd_avx2_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "streamexport._speedups",
    "The C core of streamexport's number formatter (see streamexport.formatter).", -1, methods,
    NULL, NULL, NULL, NULL,
};

static PyObject *error_class(PyObject *errors, const char *name)
{
    PyObject *cls = PyObject_GetAttrString(errors, name);
    if (cls != NULL && !PyExceptionClass_Check(cls)) {
        PyErr_Format(PyExc_TypeError, "streamexport.errors.%s is not an exception class", name);
        Py_CLEAR(cls);
    }
    return cls;
}

PyMODINIT_FUNC PyInit__speedups(void)
{
    PyObject *errors = PyImport_ImportModule("streamexport.errors");
    if (errors == NULL)
        return NULL;
    UnsupportedDtypeError = error_class(errors, "UnsupportedDtypeError");
    BufferSizeError = error_class(errors, "BufferSizeError");
    ShapeError = error_class(errors, "ShapeError");
    NonFiniteError = error_class(errors, "NonFiniteError");
    Py_DECREF(errors);
    if (!UnsupportedDtypeError || !BufferSizeError || !ShapeError || !NonFiniteError)
        return NULL;
    se_lut_init();  /* before any thread can format: the tables are read-only after this */
    const char *no_simd = getenv("STREAMEXPORT_DISABLE_SIMD");
    se_simd_set_enabled(!(no_simd && *no_simd && strcmp(no_simd, "0") != 0));
    return PyModule_Create(&module);
}
