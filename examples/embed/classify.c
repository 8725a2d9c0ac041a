/* classify: an fnn model in a program of your own. Loads a model file written by `fnn train`
 * and prints, for each image file (PNG, JPEG, PGM or BMP, any size), its most likely class and
 * that class's probability. Build it against an installed fnn (see Makefile):
 *
 *     cc -O2 classify.c $(pkg-config --cflags --libs fnn) -pthread -o classify
 *     ./classify model.safetensors shirt.png boot.png
 *
 * The images are classified by a few threads that share one model. A model is not safe for
 * two calls at once (it holds the memory its passes work in: "Threads and models" in fnn.h),
 * so every call that uses it runs under a lock, while reading and resizing the images, which
 * touches no model, runs in parallel. To run the model itself in parallel, give each thread a
 * model of its own, loaded one after another before the threads start (fnn.h says why). */
#include <fnn.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_WORKERS 4

typedef struct {
    int best;     /* most likely class, -1 if the image could not be classified */
    float prob;   /* its probability */
    fnn_error err;
} result;

typedef struct {
    fnn_model *model;     /* shared by the workers */
    pthread_mutex_t lock; /* held around every use of model, and of next */
    int h, w, nclasses;   /* the model's input size and classes */
    char **paths;         /* (n) image files */
    result *results;      /* (n) */
    int n, next;          /* images, and the next one a worker takes */
} job;

static void classify_one(job *j, int i, float *x, float *probs)
{
    result *r = &j->results[i];
    r->best = -1;
    /* Grey, resized to the model's input, in [0, 1]: as fnn's training data. */
    if (fnn_image_load(j->paths[i], 1, j->h, j->w, 0, x, &r->err) != FNN_OK)
        return;
    pthread_mutex_lock(&j->lock);
    fnn_status s = fnn_model_predict(j->model, x, 1, probs, 1, &r->err);
    pthread_mutex_unlock(&j->lock);
    if (s != FNN_OK)
        return;
    r->best = 0;
    for (int k = 1; k < j->nclasses; k++)
        if (probs[k] > probs[r->best])
            r->best = k;
    r->prob = probs[r->best];
}

static void *worker(void *arg)
{
    job *j = arg;
    float *x = malloc((size_t)j->h * j->w * sizeof *x);      // (h, w)
    float *probs = malloc((size_t)j->nclasses * sizeof *probs); // (nclasses)
    for (;;) {
        pthread_mutex_lock(&j->lock);
        int i = j->next++;
        pthread_mutex_unlock(&j->lock);
        if (i >= j->n)
            break;
        if (x && probs) {
            classify_one(j, i, x, probs);
        } else {
            j->results[i].best = -1;
            snprintf(j->results[i].err.msg, sizeof j->results[i].err.msg,
                     "%s: out of memory", j->paths[i]);
        }
    }
    free(x);
    free(probs);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL IMAGE...\n", argv[0]);
        return 2;
    }
    fnn_error err;
    job j = {.paths = argv + 2, .n = argc - 2};
    j.model = fnn_model_load(argv[1], NULL, &err);
    if (!j.model) {
        fprintf(stderr, "classify: %s\n", err.msg);
        return 1;
    }
    int c;
    fnn_model_input_shape(j.model, &c, &j.h, &j.w);
    j.nclasses = fnn_model_num_classes(j.model);
    j.results = calloc((size_t)j.n, sizeof *j.results);
    if (c != 1 || !j.results) {
        fprintf(stderr, "classify: %s\n", c != 1 ? "the model takes colour input; this example "
                                                   "reads images grey" : "out of memory");
        fnn_model_free(j.model);
        free(j.results);
        return 1;
    }
    pthread_mutex_init(&j.lock, NULL);

    pthread_t threads[MAX_WORKERS];
    int started = 0;
    while (started < MAX_WORKERS && started < j.n &&
           pthread_create(&threads[started], NULL, worker, &j) == 0)
        started++;
    if (started == 0) /* no thread could start: do the work here */
        worker(&j);
    for (int t = 0; t < started; t++)
        pthread_join(threads[t], NULL);

    /* Every image is classified before anything is printed: a bad file gives no output. */
    int rc = 0;
    for (int i = 0; i < j.n; i++)
        if (j.results[i].best < 0) {
            fprintf(stderr, "classify: %s\n", j.results[i].err.msg);
            rc = 1;
        }
    for (int i = 0; i < j.n && rc == 0; i++)
        printf("%s: class %d, probability %.6f\n", j.paths[i], j.results[i].best,
               j.results[i].prob);

    pthread_mutex_destroy(&j.lock);
    free(j.results);
    fnn_model_free(j.model);
    return rc;
}
