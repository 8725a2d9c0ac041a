/* libFuzzer harness for training checkpoints (needs: src/io/checkpoint.c): the description
 * (fnn_checkpoint_info_read), then, when it reads, the whole resume path of fnn_train
 * (fnn_checkpoint_load into a model built from its arch and an optimizer for its settings).
 * Input: the file's bytes. */
#include "fuzz_common.h"

#include <string.h>

#include "fnn.h"
#include "io/checkpoint.h"
#include "model/model.h"

/* Steps per epoch of the pretend run: a checkpoint's step and t must fit it. */
#define STEPS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(0, data, size);
    fnn_checkpoint_info info;
    fnn_error err = {FNN_OK, ""};
    if (fnn_checkpoint_info_read(path, &info, &err) != FNN_OK) {
        FUZZ_CHECK(err.status != FNN_OK && err.msg[0] != '\0');
        FUZZ_CHECK(info.arch == NULL && info.user_json == NULL);
        return 0;
    }
    FUZZ_CHECK(info.arch != NULL);
    fnn_model *m = fnn_model_create(info.arch, info.c, info.h, info.w, &err);
    if (m) {
        fnn_train_config cfg = info.cfg;
        /* Room for what the checkpoint has done and one epoch more, as a resume asks for. */
        cfg.epochs = info.epoch + 1;
        fnn_optimizer o;
        memset(&o, 0, sizeof o);
        fnn_epoch_stats *stats = calloc((size_t)cfg.epochs, sizeof *stats);
        float *best = malloc(m->arena_size * sizeof *best + 1);
        if (stats && best && fnn_optimizer_init(&o, &cfg.optim, m->arena_size, &err) == FNN_OK) {
            fnn_train_state st;
            memset(&st, 0, sizeof st);
            int has_best = 0;
            fnn_error lerr = {FNN_OK, ""};
            fnn_status s = fnn_checkpoint_load(path, m, &cfg, STEPS, &st, stats, &o, best,
                                               &has_best, &lerr);
            if (s == FNN_OK)
                FUZZ_CHECK(st.epoch == info.epoch && st.step < STEPS);
            else
                FUZZ_CHECK(lerr.msg[0] != '\0');
            fnn_optimizer_release(&o);
        }
        free(stats);
        free(best);
        fnn_model_free(m);
    }
    fnn_checkpoint_info_free(&info);
    return 0;
}
