/* Shared by the PyTorch parity tests: a fixture read from a safetensors file written by a
 * tools/make_*fixture.py script, its initial tensors copied into an fnn model by name, and
 * tensor-by-tensor comparison within TOL (the including test defines FIXTURE and TOL), and a
 * training step's forward, loss and backward passes on one thread or a team. A fixture whose
 * metadata has a "normalization" gets it as the model's input normalisation. Static, as it
 * serves two test programs only. */
#ifndef FNN_TESTS_PARITY_H
#define FNN_TESTS_PARITY_H

/* ---------------------------------------------------------------- the fixture */

/* The most threads a test runs the fixture's model with. */
#define PARITY_TEAM 4

typedef struct {
    fnn_st_file st;
    fnn_model *m;
    fnn_exec *ex;     /* the passes' memory, for up to PARITY_TEAM threads */
    int n;            /* batch rows */
    int k;            /* classes */
    size_t in;        /* floats per input sample */
    const float *x;   /* (n, c, h, w) */
    uint8_t *labels;  /* (n) */
} fixture;

static const fnn_st_tensor *need(const fixture *f, const char *name)
{
    const fnn_st_tensor *t = fnn_st_find(&f->st, name);
    if (!t)
        fail_msg("%s: no tensor \"%s\"", FIXTURE, name);
    return t;
}

static cJSON *meta_json(const fixture *f, const char *key)
{
    const char *text = fnn_st_meta(&f->st, key);
    if (!text)
        fail_msg("%s: no metadata \"%s\"", FIXTURE, key);
    cJSON *j = cJSON_Parse(text);
    if (!j)
        fail_msg("%s: metadata \"%s\" is not JSON: %s", FIXTURE, key, text);
    return j;
}

static double json_number(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v))
        fail_msg("%s: hyper-parameter \"%s\" is missing or not a number", FIXTURE, key);
    return v->valuedouble;
}

/* The fixture's Adam settings (its "adam" metadata) and, through *steps, how many steps it took. */
static fnn_optim_config fixture_adam(const fixture *f, int *steps)
{
    cJSON *j = meta_json(f, "adam");
    fnn_optim_config cfg = {.kind = FNN_OPT_ADAM,
                            .lr = (float)json_number(j, "lr"),
                            .beta1 = (float)json_number(j, "beta_1"),
                            .beta2 = (float)json_number(j, "beta_2"),
                            .eps = (float)json_number(j, "epsilon")};
    *steps = (int)json_number(j, "steps");
    cJSON_Delete(j);
    assert_true(*steps >= 1 && *steps <= 100);
    return cfg;
}

/* Copies the fixture's initial tensors, moving statistics included, into the model by name. */
static void load_initial(fixture *f)
{
    int nt = fnn_model_num_tensors(f->m);
    assert_true(nt > 0);
    for (int i = 0; i < nt; i++) {
        fnn_tensor t;
        fnn_model_tensor(f->m, i, &t);
        const fnn_st_tensor *s = need(f, t.name);
        assert_int_equal(s->rank, t.rank);
        for (int d = 0; d < t.rank; d++)
            assert_int_equal(s->shape[d], t.shape[d]);
        assert_int_equal(s->size, t.size);
        memcpy(t.data, s->data, t.size * sizeof *t.data);
    }
}

/* The fixture's input normalisation, metadata {"mean": [c], "std": [c]}, when it has one. */
static void set_normalization(fixture *f)
{
    if (!fnn_st_meta(&f->st, "normalization"))
        return;
    cJSON *j = meta_json(f, "normalization");
    int c, h, w;
    fnn_model_input_shape(f->m, &c, &h, &w);
    float mean[16], std[16];
    assert_true(c <= 16);
    const cJSON *mu = cJSON_GetObjectItemCaseSensitive(j, "mean");
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(j, "std");
    assert_true(cJSON_GetArraySize(mu) == c && cJSON_GetArraySize(sd) == c);
    for (int i = 0; i < c; i++) {
        mean[i] = (float)cJSON_GetArrayItem(mu, i)->valuedouble;
        std[i] = (float)cJSON_GetArrayItem(sd, i)->valuedouble;
    }
    cJSON_Delete(j);
    fnn_error err;
    assert_int_equal(fnn_model_set_normalization(f->m, mean, std, &err), FNN_OK);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fnn_error err;
    if (fnn_st_read(FIXTURE, &f->st, &err) != FNN_OK)
        fail_msg("%s", err.msg);

    const char *spec = fnn_st_meta(&f->st, "spec");
    assert_non_null(spec);
    cJSON *shape = meta_json(f, "input_shape");
    assert_true(cJSON_IsArray(shape) && cJSON_GetArraySize(shape) == 3);
    int c = cJSON_GetArrayItem(shape, 0)->valueint, h = cJSON_GetArrayItem(shape, 1)->valueint,
        w = cJSON_GetArrayItem(shape, 2)->valueint;
    cJSON_Delete(shape);
    f->m = fnn_model_create(spec, c, h, w, &err);
    if (!f->m)
        fail_msg("fixture spec \"%s\": %s", spec, err.msg);
    assert_string_equal(fnn_model_spec(f->m), spec);
    f->k = fnn_model_num_classes(f->m);

    const fnn_st_tensor *x = need(f, "x"), *y = need(f, "y");
    assert_int_equal(x->rank, 4);
    assert_int_equal(x->shape[1], c);
    assert_int_equal(x->shape[2], h);
    assert_int_equal(x->shape[3], w);
    f->n = (int)x->shape[0];
    f->in = (size_t)c * h * w;
    f->x = x->data;
    assert_int_equal(y->size, f->n);
    f->labels = malloc((size_t)f->n);
    assert_non_null(f->labels);
    for (int i = 0; i < f->n; i++) {
        float v = y->data[i];
        assert_true(v >= 0.0f && v < (float)f->k && v == floorf(v));
        f->labels[i] = (uint8_t)v;
    }
    set_normalization(f);
    assert_int_equal(fnn_exec_create(f->m, f->n, PARITY_TEAM, f->m->grads, &f->ex, &err), FNN_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    fnn_exec_free(f->ex);
    fnn_model_free(f->m);
    fnn_st_free(&f->st);
    free(f->labels);
    free(f);
    return 0;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (isnan(e))
            return INFINITY;
        d = fmax(d, e);
    }
    return d;
}

/* Compares the model's tensor i (from base, the parameter or gradient arena) with the
 * fixture's tensor "<prefix><name>"; returns the max absolute difference. */
static double compare_tensor(const fixture *f, int i, const float *base, const char *prefix)
{
    fnn_tensor t;
    fnn_model_tensor(f->m, i, &t);
    char name[96];
    snprintf(name, sizeof name, "%s%s", prefix, t.name);
    const fnn_st_tensor *s = need(f, name);
    assert_int_equal(s->size, t.size);
    const float *mine = base + (t.data - f->m->params);
    double d = max_diff(mine, s->data, t.size);
    if (!(d < TOL))
        fail_msg("%s: max |difference| %.3g exceeds %.g", name, d, TOL);
    return d;
}

/* ---------------------------------------------------------------- running the model */

/* Forward, loss and backward as team code; returns the mean loss through *loss (written by
 * one thread). */
static void team_step(fixture *f, const fnn_pass *pass, float *dx, double *loss)
{
    const float *logits = fnn_exec_forward(f->ex, pass, f->x, f->n);
#pragma omp single
    {
        double sum;
        int hits;
        fnn_softmax_xent(logits, f->labels, f->n, f->k, 0.0f, 0, (size_t)f->n,
                         fnn_exec_logit_grad(f->ex), &sum, &hits);
        *loss = sum / f->n;
    }
    fnn_exec_backward(f->ex, pass, f->x, f->n, dx);
}

/* threads == 1 runs outside any parallel region, the team functions' one-thread path. */
static double model_step(fixture *f, float *dx, int threads)
{
    fnn_pass pass = {.train = 1, .key = 7};
    double loss = NAN;
    if (threads == 1) {
        team_step(f, &pass, dx, &loss);
        return loss;
    }
    fnn_blas_single_threaded();
#pragma omp parallel num_threads(threads)
    team_step(f, &pass, dx, &loss);
    return loss;
}

#endif
