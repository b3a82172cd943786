/*
 * One step's pybullet contact points into per-pair sums and flat arrays, without a
 * Python object per number read.
 *
 * pybullet's getContactPoints() returns a tuple of ~300 point tuples per step in a
 * pile of 100 bodies. Reading them with NumPy (fromiter over the tuples, then sorting
 * and reducing every point of every step at the end of the frame) costs about a tenth
 * of the physics step itself; reading them here costs almost nothing.
 * hybrid/physics/contacts.py has a NumPy version of this function, used where this
 * module was not compiled; tests hold the two equal, bit for bit.
 *
 * scan_step(points, stride, seen, force_sum, step, offset,
 *           new_a, new_b, new_force, new_step, position, normal) -> k
 *
 *   points     the tuple pybullet returned (n point tuples)
 *   stride     pair key = bodyA * stride + bodyB (pybullet's own order of the two);
 *              points of bodies outside [0, stride) are skipped
 *   seen       writable uint8[stride * stride]: pairs that already pushed this frame;
 *              the pairs that start pushing in this step are set
 *   force_sum  writable float64[stride * stride]: normalForce of every pushing point
 *              (force > 0) is added to its pair's entry, in point order
 *   step       this step's index, written to new_step
 *   offset     the row at which this step's rows start in the six arrays below
 *   new_a, new_b, new_force, new_step
 *              writable int64, int64, float64, int64 [offset + n]: rows offset to
 *              offset + k - 1 describe the pushing points, in point order, of the pairs
 *              that start pushing in this step
 *   position   writable float64[(offset + n) * 3]: for those points, midway between the
 *              surfaces: positionOnB + distance / 2 * normalOnB, metres
 *   normal     writable float64[(offset + n) * 3]: for those points, contactNormalOnB
 *              (B to A)
 *
 * All points of a pair that starts pushing in this step count, so `seen` is set only
 * after the pass. Field indices of a point tuple follow pybullet's documentation of
 * getContactPoints: 1 bodyUniqueIdA, 2 bodyUniqueIdB, 6 positionOnB,
 * 7 contactNormalOnB, 8 contactDistance, 9 normalForce.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int
check_buffer(Py_buffer *view, Py_ssize_t needed, Py_ssize_t itemsize, const char *name)
{
    if (view->len < needed * itemsize) {
        PyErr_Format(PyExc_ValueError, "scan_step: buffer `%s` holds %zd bytes, needs %zd",
                     name, view->len, needed * itemsize);
        return -1;
    }
    return 0;
}

static int
read_vec3(PyObject *seq, double *out)
{
    if (!PyTuple_Check(seq) || PyTuple_GET_SIZE(seq) != 3) {
        PyErr_SetString(PyExc_TypeError, "scan_step: a contact point's vector is not a 3-tuple");
        return -1;
    }
    for (int k = 0; k < 3; k++) {
        out[k] = PyFloat_AsDouble(PyTuple_GET_ITEM(seq, k));
        if (out[k] == -1.0 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static PyObject *
scan_step(PyObject *self, PyObject *args)
{
    PyObject *points;
    Py_ssize_t stride, step, offset;
    Py_buffer seen = {0}, force_sum = {0}, new_a = {0}, new_b = {0}, new_force = {0}, new_step = {0};
    Py_buffer position = {0}, normal = {0};
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "O!nw*w*nnw*w*w*w*w*w*", &PyTuple_Type, &points, &stride, &seen, &force_sum, &step,
                          &offset, &new_a, &new_b, &new_force, &new_step, &position, &normal))
        return NULL;

    Py_ssize_t n = PyTuple_GET_SIZE(points), end = offset + n;
    if (stride < 0 || offset < 0) {
        PyErr_SetString(PyExc_ValueError, "scan_step: stride and offset must be >= 0");
        goto done;
    }
    if (check_buffer(&seen, stride * stride, 1, "seen") || check_buffer(&force_sum, stride * stride, 8, "force_sum") ||
        check_buffer(&new_a, end, 8, "new_a") || check_buffer(&new_b, end, 8, "new_b") ||
        check_buffer(&new_force, end, 8, "new_force") || check_buffer(&new_step, end, 8, "new_step") ||
        check_buffer(&position, 3 * end, 8, "position") || check_buffer(&normal, 3 * end, 8, "normal"))
        goto done;

    unsigned char *seen_p = (unsigned char *)seen.buf;
    double *sum_p = (double *)force_sum.buf;
    long long *a_p = (long long *)new_a.buf + offset, *b_p = (long long *)new_b.buf + offset;
    long long *s_p = (long long *)new_step.buf + offset;
    double *f_p = (double *)new_force.buf + offset;
    double *pos_p = (double *)position.buf + 3 * offset, *nrm_p = (double *)normal.buf + 3 * offset;

    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pt = PyTuple_GET_ITEM(points, i);
        if (!PyTuple_Check(pt) || PyTuple_GET_SIZE(pt) < 10) {
            PyErr_SetString(PyExc_TypeError, "scan_step: a contact point is not a pybullet contact tuple");
            goto done;
        }
        double f = PyFloat_AsDouble(PyTuple_GET_ITEM(pt, 9));
        long long a = PyLong_AsLongLong(PyTuple_GET_ITEM(pt, 1));
        long long b = PyLong_AsLongLong(PyTuple_GET_ITEM(pt, 2));
        if (PyErr_Occurred())
            goto done;
        if (!(f > 0.0) || a < 0 || b < 0 || a >= stride || b >= stride)
            continue;
        Py_ssize_t key = (Py_ssize_t)(a * stride + b);
        sum_p[key] += f;
        if (seen_p[key])
            continue;
        double on_b[3], nrm[3];
        if (read_vec3(PyTuple_GET_ITEM(pt, 6), on_b) || read_vec3(PyTuple_GET_ITEM(pt, 7), nrm))
            goto done;
        double half = 0.5 * PyFloat_AsDouble(PyTuple_GET_ITEM(pt, 8));
        if (PyErr_Occurred())
            goto done;
        a_p[k] = a;
        b_p[k] = b;
        f_p[k] = f;
        s_p[k] = step;
        for (int c = 0; c < 3; c++) {
            pos_p[3 * k + c] = on_b[c] + half * nrm[c];
            nrm_p[3 * k + c] = nrm[c];
        }
        k++;
    }
    for (Py_ssize_t j = 0; j < k; j++)
        seen_p[a_p[j] * stride + b_p[j]] = 1;
    result = PyLong_FromSsize_t(k);

done:
    PyBuffer_Release(&seen);
    PyBuffer_Release(&force_sum);
    PyBuffer_Release(&new_a);
    PyBuffer_Release(&new_b);
    PyBuffer_Release(&new_force);
    PyBuffer_Release(&new_step);
    PyBuffer_Release(&position);
    PyBuffer_Release(&normal);
    return result;
}

static PyMethodDef methods[] = {
    {"scan_step", scan_step, METH_VARARGS, "Read one step's pybullet contact points into flat arrays (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_contact_scan", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__contact_scan(void)
{
    return PyModule_Create(&module);
}
