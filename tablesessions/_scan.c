/*
 * tablesessions._scan: the encoder's plain-value check in one C pass.
 *
 * Before a session value is written with one orjson call (serialization._fast),
 * the encoder must know that orjson writes it exactly as the Python walk would:
 * every value nested in it has one of a few exact types, it is at most
 * MAX_DEPTH levels deep, its dict keys are exact str, and (when asked) every
 * float is finite. In Python that check costs more than orjson's whole encoding
 * (docs/performance.md, issue 18); here it is a pointer compare per value.
 *
 * Why this is safe without taking references: the scan only reads exact dicts,
 * lists and the leaf types it is given, and calls nothing that can run Python
 * code (no __eq__, no __hash__, no __iter__: PyDict_Next and the list macros
 * read the objects' own arrays), so nothing can change or free an object while
 * the scan holds the GIL. (A free-threaded CPython turns the GIL back on when
 * it imports a module that, like this one, does not declare Py_MOD_GIL_NOT_USED.)
 * A cycle or very deep nesting stops at max_depth.
 *
 * The pure-Python check (serialization._kinds) stays the reference: the
 * interpreter or platform without a C compiler uses it, and the tests compare
 * the two on generated values.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

/* Enough for every type the encoder admits (it passes eleven). */
#define MAX_KINDS 32

typedef struct {
    PyTypeObject *allowed[MAX_KINDS];
    int n_allowed;
    unsigned long seen; /* bit i: a value of allowed[i] was met */
    int max_depth;
    int floats;         /* refuse NaN and the infinities */
} Scan;

static int scan(Scan *s, PyObject *o, int depth);

/* scan() for an item of a dict or list: a value of the first allowed type (str,
 * the commonest leaf) is taken here, without the call. */
static inline int
scan_item(Scan *s, PyObject *o, int depth)
{
    if (Py_TYPE(o) == s->allowed[0]) {
        s->seen |= 1UL;
        return 1;
    }
    return scan(s, o, depth);
}

/* 1 when ``o`` and everything nested in it passes, 0 when not. */
static int
scan(Scan *s, PyObject *o, int depth)
{
    PyTypeObject *kind = Py_TYPE(o);
    int i = 0;
    while (i < s->n_allowed && s->allowed[i] != kind) {
        i++;
    }
    if (i == s->n_allowed) {
        return 0;
    }
    s->seen |= 1UL << i;
    if (kind == &PyFloat_Type) {
        return !s->floats || isfinite(PyFloat_AS_DOUBLE(o));
    }
    if (kind == &PyDict_Type) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        if (depth > s->max_depth) {
            return 0;
        }
        while (PyDict_Next(o, &pos, &key, &value)) {
            if (!PyUnicode_CheckExact(key) || !scan_item(s, value, depth + 1)) {
                return 0;
            }
        }
        return 1;
    }
    if (kind == &PyList_Type) {
        if (depth > s->max_depth) {
            return 0;
        }
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(o); j++) {
            if (!scan_item(s, PyList_GET_ITEM(o, j), depth + 1)) {
                return 0;
            }
        }
        return 1;
    }
    return 1;
}

PyDoc_STRVAR(kinds_doc,
"kinds(value, allowed, max_depth, floats, /)\n--\n\n"
"The set of the exact types of ``value`` and of everything nested in it (dict\n"
"values, list items), when each is one of the ``allowed`` types (a tuple, most\n"
"common first), exact dicts and lists are expanded at most ``max_depth`` levels\n"
"deep (the value itself is level 1), every dict key is an exact str and, with\n"
"``floats``, every float is finite; else None.");

static PyObject *
kinds(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Scan s;
    PyObject *allowed, *out;
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "kinds() takes exactly 4 arguments");
        return NULL;
    }
    allowed = args[1];
    if (!PyTuple_CheckExact(allowed) || PyTuple_GET_SIZE(allowed) < 1
            || PyTuple_GET_SIZE(allowed) > MAX_KINDS) {
        PyErr_Format(PyExc_TypeError, "allowed must be a tuple of 1 to %d types",
                     MAX_KINDS);
        return NULL;
    }
    s.n_allowed = (int)PyTuple_GET_SIZE(allowed);
    for (int i = 0; i < s.n_allowed; i++) {
        PyObject *kind = PyTuple_GET_ITEM(allowed, i);
        if (!PyType_Check(kind)) {
            PyErr_SetString(PyExc_TypeError, "allowed must hold types");
            return NULL;
        }
        s.allowed[i] = (PyTypeObject *)kind;
    }
    {
        long depth = PyLong_AsLong(args[2]);
        if (depth == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (depth < 0 || depth > 10000) {
            PyErr_SetString(PyExc_ValueError, "max_depth must be between 0 and 10000");
            return NULL;
        }
        s.max_depth = (int)depth;
    }
    s.floats = PyObject_IsTrue(args[3]);
    if (s.floats < 0) {
        return NULL;
    }
    s.seen = 0;
    if (!scan(&s, args[0], 1)) {
        Py_RETURN_NONE;
    }
    out = PySet_New(NULL);
    if (out == NULL) {
        return NULL;
    }
    for (int i = 0; i < s.n_allowed; i++) {
        if ((s.seen >> i) & 1UL && PySet_Add(out, (PyObject *)s.allowed[i]) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyMethodDef methods[] = {
    {"kinds", (PyCFunction)(void (*)(void))kinds, METH_FASTCALL, kinds_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tablesessions._scan",
    .m_doc = "The encoder's plain-value check in C (see serialization._fast).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    return PyModuleDef_Init(&module_def);
}
