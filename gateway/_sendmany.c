/*
 * send_many(fds, bufs) -> list[int]: one non-blocking send() per (fd, buffer),
 * all of them with the GIL released.
 *
 * Why this exists: at the seed load the gateway spends ~60 % of its time in
 * the kernel's loopback send path (one coalesced write per session per loop
 * pass). Done from a writer thread in plain Python, every send() would give
 * up the GIL and then wait up to a switch interval to get it back from the
 * busy event-loop thread: hundreds of sends per pass, each delayed. Sending a
 * whole pass's buffers in one call that holds no GIL lets that kernel work run
 * on the other core while the loop thread reads, routes and fans out.
 *
 * The result for each pair is the number of bytes sent (possibly fewer than
 * the buffer: the caller keeps the rest), or -errno (-EAGAIN when the socket
 * buffer is full, -EPIPE / -ECONNRESET / -EBADF when the peer is gone).
 * MSG_NOSIGNAL: a vanished peer is an error code, never a SIGPIPE.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct {
    int fd;
    const char *data;
    Py_ssize_t len;
    Py_ssize_t result;
} item_t;

static PyObject *send_many(PyObject *self, PyObject *args) {
    PyObject *fds, *bufs;
    if (!PyArg_ParseTuple(args, "O!O!:send_many", &PyList_Type, &fds, &PyList_Type, &bufs))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(fds);
    if (PyList_GET_SIZE(bufs) != n) {
        PyErr_SetString(PyExc_ValueError, "send_many: fds and bufs differ in length");
        return NULL;
    }
    /* Own a reference to every buffer while the GIL is released: the caller's
       lists could be changed by another thread meanwhile. */
    PyObject *keep = PyList_GetSlice(bufs, 0, n);
    if (keep == NULL)
        return NULL;
    item_t *items = PyMem_Malloc(sizeof(item_t) * (n ? n : 1));
    if (items == NULL) {
        Py_DECREF(keep);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *buf = PyList_GET_ITEM(keep, i);
        long fd = PyLong_AsLong(PyList_GET_ITEM(fds, i));
        if (fd == -1 && PyErr_Occurred())
            goto fail;
        if (!PyBytes_Check(buf)) {
            PyErr_SetString(PyExc_TypeError, "send_many: every buffer must be bytes");
            goto fail;
        }
        items[i].fd = (int)fd;
        items[i].data = PyBytes_AS_STRING(buf);
        items[i].len = PyBytes_GET_SIZE(buf);
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t sent = 0;
        while (sent < items[i].len) {
            ssize_t r = send(items[i].fd, items[i].data + sent, (size_t)(items[i].len - sent),
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (r > 0) {
                sent += r;
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            if (sent == 0)
                sent = r < 0 ? -errno : -EAGAIN;
            break;  /* EAGAIN after a partial send: report what went out */
        }
        items[i].result = sent;
    }
    Py_END_ALLOW_THREADS
    PyObject *out = PyList_New(n);
    if (out == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromSsize_t(items[i].result);
        if (v == NULL) {
            Py_DECREF(out);
            goto fail;
        }
        PyList_SET_ITEM(out, i, v);
    }
    PyMem_Free(items);
    Py_DECREF(keep);
    return out;
fail:
    PyMem_Free(items);
    Py_DECREF(keep);
    return NULL;
}

static PyMethodDef methods[] = {
    {"send_many", send_many, METH_VARARGS,
     "send_many(fds, bufs) -> list of bytes sent or -errno, one non-blocking send per pair, GIL released."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "chatcluster.gateway._sendmany",
    "Many non-blocking sends in one call without the GIL (see gateway/outlets.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__sendmany(void) { return PyModule_Create(&module); }
