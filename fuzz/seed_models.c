/* Writes the seeds that are easiest made by fnn itself, each a few kilobytes at most: model files
 * (fnn_model_save), checkpoints (fnn_train on a tiny synthetic set) and images (stb_image_write).
 * Usage: seed_models MODEL_DIR CHECKPOINT_DIR IMAGE_DIR (called by make_seeds.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image_write.h>

#include "fnn.h"

#define SIDE 4
#define N 24

/* Trains a tiny model for two epochs with a checkpoint after each; the file is the seed. */
static int write_checkpoint(const char *dir, const char *name, fnn_optimizer_kind kind,
                            int early_stopping)
{
    static uint8_t images[N * SIDE * SIDE], labels[N];
    for (int i = 0; i < N; i++) {
        labels[i] = (uint8_t)(i % 10);
        for (int p = 0; p < SIDE * SIDE; p++)
            images[i * SIDE * SIDE + p] = (uint8_t)(p == i % 10 ? 255 : 20 * p);
    }
    fnn_dataset all = {.n = N, .c = 1, .h = SIDE, .w = SIDE, .images = images, .labels = labels,
                       .nclasses = 10},
                train, val;
    fnn_error err = {FNN_OK, ""};
    fnn_model *m = fnn_model_create("flatten dense:3:relu dense:10:softmax", 1, SIDE, SIDE, &err);
    char path[1024];
    snprintf(path, sizeof path, "%s/valid_%s", dir, name);
    fnn_train_config cfg = fnn_train_default();
    cfg.epochs = 2;
    cfg.batch_size = 8;
    cfg.threads = 1;
    cfg.optim = fnn_optim_default(kind);
    cfg.early_stopping = early_stopping;
    cfg.checkpoint = path;
    cfg.checkpoint_user = "{\"seed\": \"fuzz\"}";
    fnn_epoch_stats stats[2];
    if (m) {
        fnn_model_init(m, 3);
        if (fnn_dataset_split(&all, 0.25, &train, &val, &err) == FNN_OK)
            fnn_train(m, &train, &val, &cfg, stats, &err);
    }
    fnn_model_free(m);
    if (err.status != FNN_OK)
        fprintf(stderr, "seed_models: checkpoint %s: %s\n", name, err.msg);
    return err.status == FNN_OK;
}

static int write_images(const char *dir)
{
    unsigned char px[5 * 7 * 4];
    for (int i = 0; i < 5 * 7 * 4; i++)
        px[i] = (unsigned char)(i * 29);
    char path[1024];
    int ok = 1;
    /* One byte of harness options first (fuzz_image.c): 0x40 = 28x28, no inversion. */
    static const struct {
        const char *name;
        int comp;
    } kinds[] = {{"grey", 1}, {"grey_alpha", 2}, {"rgb", 3}, {"rgba", 4}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        snprintf(path, sizeof path, "%s/raw_%s.png", dir, kinds[k].name);
        ok &= stbi_write_png(path, 5, 7, kinds[k].comp, px, 5 * kinds[k].comp) != 0;
    }
    snprintf(path, sizeof path, "%s/raw_rgb.bmp", dir);
    ok &= stbi_write_bmp(path, 5, 7, 3, px) != 0;
    snprintf(path, sizeof path, "%s/raw_rgb.jpg", dir);
    ok &= stbi_write_jpg(path, 5, 7, 3, px, 80) != 0;
    if (!ok)
        fprintf(stderr, "seed_models: cannot write the image seeds\n");
    return ok;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name, *spec;
        int c, h, w;
    } models[] = {
        {"mlp", "flatten dense:4 dense:10:softmax", 1, 4, 4},
        {"dropout_relu", "flatten dense:3:relu dropout:0.5 dense:10", 1, 3, 3},
        {"cnn", "conv2d:2:3:same:relu maxpool:2 batchnorm flatten dense:10:softmax", 1, 6, 6},
        {"residual",
         "conv2d:2:3:same residual conv2d:2:3:same:nobias batchnorm relu end avgpool:2 "
         "leakyrelu:0.1 elu tanh sigmoid globalavgpool dense:3:softmax",
         2, 4, 4},
    };
    if (argc != 4) {
        fprintf(stderr, "usage: seed_models MODEL_DIR CHECKPOINT_DIR IMAGE_DIR\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        fnn_error err = {FNN_OK, ""};
        fnn_model *m = fnn_model_create(models[i].spec, models[i].c, models[i].h, models[i].w,
                                        &err);
        char path[1024];
        snprintf(path, sizeof path, "%s/valid_%s", argv[1], models[i].name);
        if (m) {
            fnn_model_init(m, 7);
            fnn_model_save(m, NULL, path, &err);
        }
        fnn_model_free(m);
        if (err.status != FNN_OK) {
            fprintf(stderr, "seed_models: %s: %s\n", models[i].name, err.msg);
            return 1;
        }
    }
    int ok = write_checkpoint(argv[2], "adam", FNN_OPT_ADAM, 0) &&
             write_checkpoint(argv[2], "sgd_early_stopping", FNN_OPT_SGD, 1) &&
             write_checkpoint(argv[2], "adamw", FNN_OPT_ADAMW, 0) && write_images(argv[3]);
    return ok ? 0 : 1;
}
