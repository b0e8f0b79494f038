/*
 * What the compiled kernels (wspcap/<layer>/_speedups.c) share: reading
 * their array arguments. Each kernel includes it ("../_speedups.h"); it
 * holds nothing but static inline helpers.
 */

#ifndef WSPCAP_SPEEDUPS_H
#define WSPCAP_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* An array argument, as the buffer protocol gives it: one-dimensional,
 * C-contiguous, of the item size the caller promises (8 for int64
 * positions and lengths, 1 for bool flags). Sets TypeError and returns -1
 * otherwise; the caller releases the view it got. */
static inline int
get_array(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *what)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->itemsize != itemsize || view->ndim != 1) {
        PyErr_Format(PyExc_TypeError, "%s: a one-dimensional array of %zd-byte items expected",
                     what, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

#endif
