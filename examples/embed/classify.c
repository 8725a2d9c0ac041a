/* classify: an fnn model in a program of your own. Loads a model file written by `fnn train`
 * and prints, for each image file (PNG, JPEG, PGM or BMP, any size), its most likely class and
 * that class's probability. Build it against an installed fnn (see Makefile):
 *
 *     cc -O2 classify.c $(pkg-config --cflags --libs fnn) -pthread -o classify
 *     ./classify model.safetensors shirt.png boot.png
 *
 * The images are classified by a few threads that share one model, with no lock: inference
 * only reads a model ("Threads and models" in fnn.h). Each thread runs its predictions in an
 * executor of its own (fnn_predictor_create), the memory of its passes, made before the threads
 * start and kept across its images. */
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
    pthread_mutex_t lock; /* held around every use of next */
    int h, w, nclasses;   /* the model's input size and classes */
    char **paths;         /* (n) image files */
    result *results;      /* (n) */
    int n, next;          /* images, and the next one a worker takes */
} job;

typedef struct {
    job *job;
    fnn_exec *predictor; /* this worker's: one image at a time, one thread */
} worker_arg;

static void classify_one(job *j, fnn_exec *predictor, int i, float *x, float *probs)
{
    result *r = &j->results[i];
    r->best = -1;
    /* Grey, resized to the model's input, in [0, 1]: as fnn's training data. */
    if (fnn_image_load(j->paths[i], 1, j->h, j->w, 0, x, &r->err) != FNN_OK)
        return;
    if (fnn_predictor_run(predictor, x, 1, probs, &r->err) != FNN_OK)
        return;
    r->best = 0;
    for (int k = 1; k < j->nclasses; k++)
        if (probs[k] > probs[r->best])
            r->best = k;
    r->prob = probs[r->best];
}

static void *worker(void *arg)
{
    worker_arg *a = arg;
    job *j = a->job;
    float *x = malloc((size_t)j->h * j->w * sizeof *x);      // (h, w)
    float *probs = malloc((size_t)j->nclasses * sizeof *probs); // (nclasses)
    for (;;) {
        pthread_mutex_lock(&j->lock);
        int i = j->next++;
        pthread_mutex_unlock(&j->lock);
        if (i >= j->n)
            break;
        if (x && probs) {
            classify_one(j, a->predictor, i, x, probs);
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
    fnn_model *model = fnn_model_load(argv[1], NULL, &err);
    if (!model) {
        fprintf(stderr, "classify: %s\n", err.msg);
        return 1;
    }
    int c;
    fnn_model_input_shape(model, &c, &j.h, &j.w);
    j.nclasses = fnn_model_num_classes(model);
    j.results = calloc((size_t)j.n, sizeof *j.results);
    if (c != 1 || !j.results) {
        fprintf(stderr, "classify: %s\n", c != 1 ? "the model takes colour input; this example "
                                                   "reads images grey" : "out of memory");
        fnn_model_free(model);
        free(j.results);
        return 1;
    }
    /* The executors are made before any thread starts (fnn.h says why). */
    worker_arg args[MAX_WORKERS] = {0};
    int workers = j.n < MAX_WORKERS ? j.n : MAX_WORKERS;
    for (int t = 0; t < workers; t++) {
        args[t].job = &j;
        if (fnn_predictor_create(model, 1, 1, &args[t].predictor, &err) != FNN_OK) {
            fprintf(stderr, "classify: %s\n", err.msg);
            for (int u = 0; u < t; u++)
                fnn_exec_free(args[u].predictor);
            fnn_model_free(model);
            free(j.results);
            return 1;
        }
    }
    pthread_mutex_init(&j.lock, NULL);

    pthread_t threads[MAX_WORKERS];
    int started = 0;
    while (started < workers &&
           pthread_create(&threads[started], NULL, worker, &args[started]) == 0)
        started++;
    if (started == 0) /* no thread could start: do the work here */
        worker(&args[0]);
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
    for (int t = 0; t < workers; t++)
        fnn_exec_free(args[t].predictor);
    free(j.results);
    fnn_model_free(model);
    return rc;
}
