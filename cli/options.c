/* The option table of every fnn command, and the parsing and help printing built from it. */
#include "options.h"
#include "cli.h"

#include <string.h>

/* Commands that read a data set: they share the data options. */
#define DATA_READERS (CLI_TRAIN | CLI_EVAL | CLI_EXPLAIN | CLI_ROBUSTNESS | CLI_REPORT)
#define ANALYSES (CLI_EVAL | CLI_EXPLAIN | CLI_ROBUSTNESS | CLI_REPORT)
/* The `fast` recipe's training options (its architecture is the library's preset "fast"),
 * chosen on the validation split; the final model then learns from the whole training split. */
#define FAST_RECIPE                                                                            \
    "--epochs 12 --batch-size 64 --lr 0.002 --lr-schedule onecycle --label-smoothing 0.1 "    \
    "--aug-flip --aug-shift 1 --ema 0.999 --ema-every 5 --tta flip --val-split 0"
/* The `best` recipe: the same layers and training for about an hour of this project's 2-core
 * machine (50 epochs), with random erasing against the longer run's over-fitting. It keeps
 * the validation split, so that its run shows what it chose: decided before any of its test
 * figures, which each final model reads once. */
#define BEST_RECIPE                                                                            \
    "--epochs 50 --batch-size 64 --lr 0.002 --lr-schedule onecycle --label-smoothing 0.1 "    \
    "--aug-flip --aug-shift 1 --aug-erase 0.5 --ema 0.999 --ema-every 5 --tta flip"
#define SEED_RANGE 0, 2147483647.0
#define COUNT_RANGE 1, 100000000.0

#define G_DATA "data"
#define G_MODEL "model and optimisation"
#define G_SCHEDULE "learning-rate schedule (per step; --lr is the base rate)"
#define G_REG "regularisation and stopping"
#define G_CHECKPOINT "checkpoints (Ctrl-C finishes the current step, writes the checkpoint and " \
                     "exits 130)"
#define G_TRANSFER "transfer learning"
#define G_ANALYSIS "analysis"
#define G_GRID "grid"
#define G_SEARCH "search"
#define G_RUN "run"
#define G_OUTPUT "output"

/* Rows in the order --help lists them; a command's groups come in the order of its first row in
 * each. */
const cli_option cli_options[] = {
    /* ---------------------------------------------------------------- search's grid */
    {OPT_GRID, "grid", "KEY=V1,V2,...", CLI_TEXT, 0, 0, NULL, NULL,
     "a key and its values; every combination of all keys is tried, the last key varying "
     "fastest. KEY is an fnn train option without its dashes (lr, batch-size, optimizer, epochs, "
     "weight-decay, momentum, arch, ...); a train option that takes no value takes on and off. "
     "Any other KEY is a placeholder that templates refer to as {KEY}.",
     G_GRID, CLI_SEARCH, 0, 0},
    {OPT_GRID_FILE, "grid-file", "PATH", CLI_PATH, 0, 0, NULL, NULL,
     "keys from a file, one \"KEY = V1, V2, ...\" per line, '#' starts a comment; a key with one "
     "value is a fixed option",
     G_GRID, CLI_SEARCH, 0, 0},
    {OPT_ARCH, "arch", "TEMPLATE", CLI_TEXT, 0, 0, NULL, NULL,
     "the same as --grid arch=TEMPLATE. In every value, {KEY} is replaced by the trial's value of "
     "KEY, e.g. \"dense:{width}:relu\"",
     G_GRID, CLI_SEARCH, 0, 0},
    {OPT_SAMPLES, "samples", "N", CLI_INT, 1, CLI_MAX_TRIALS, NULL, NULL,
     "random search: N distinct configurations drawn from the grid instead of all of them "
     "(numbered in grid order)",
     G_GRID, CLI_SEARCH, 0, 0},
    {OPT_SEED, "seed", "N", CLI_INT, SEED_RANGE, NULL, "42",
     "seeds the draw, and is every trial's fnn train --seed unless seed is a grid key",
     G_GRID, CLI_SEARCH, 0, 0},
    {OPT_OUT, "out", "DIR", CLI_PATH, 0, 0, NULL, "required",
     "where everything goes; created if missing (with a .fnn-search file: an existing DIR "
     "without one is refused)",
     G_SEARCH, CLI_SEARCH, 0, 0},
    {OPT_WORKERS, "workers", "N", CLI_INT, 1, 1024, NULL, "the number of cores",
     "trials at once, each on one thread", G_SEARCH, CLI_SEARCH, 0, 0},
    {OPT_NO_FINAL_TEST, "no-final-test", NULL, CLI_FLAG, 0, 0, NULL, NULL,
     "skip the final evaluation: the test set is not read at all", G_SEARCH, CLI_SEARCH, 0, 0},
    {OPT_JSON, "json", NULL, CLI_FLAG, 0, 0, NULL, NULL,
     "print one JSON document with everything; progress goes to stderr", G_SEARCH, CLI_SEARCH,
     0, 0},

    /* ---------------------------------------------------------------- analyses */
    {OPT_TOP, "top", "K", CLI_INT, 1, FNN_MAX_CLASSES, NULL, "3", "classes to show per image",
     G_ANALYSIS, CLI_PREDICT, 0, 0},
    {OPT_INVERT, "invert", NULL, CLI_FLAG, 0, 0, NULL, NULL,
     "invert the image files (dark on light becomes light on dark)", G_ANALYSIS, CLI_PREDICT, 0, 0},
    {OPT_METHOD, "method", "NAME", CLI_CHOICE, 0, 0, "gradient,smoothgrad,integrated", "gradient",
     "gradient, smoothgrad (gradients averaged over noisy copies) or integrated (integrated "
     "gradients from a black image)",
     G_ANALYSIS, CLI_EXPLAIN, 0, 0},
    {OPT_SAMPLES, "samples", "N", CLI_INT, 1, 10000, NULL, "25, 32",
     "smoothgrad copies or integrated-gradient steps", G_ANALYSIS, CLI_EXPLAIN, 0, 0},
    {OPT_NOISE, "noise", "S", CLI_REAL, 1e-6, 10, NULL, "0.15",
     "smoothgrad noise standard deviation, pixels in [0, 1]", G_ANALYSIS, CLI_EXPLAIN, 0, 0},
    {OPT_PATCH, "patch", "P", CLI_INT, 1, 1024, NULL, "4", "occlusion patch side in pixels",
     G_ANALYSIS, CLI_EXPLAIN, 0, 0},
    {OPT_STRIDE, "stride", "S", CLI_INT, 1, 1024, NULL, "2", "occlusion patch step in pixels",
     G_ANALYSIS, CLI_EXPLAIN, 0, 0},
    {OPT_NO_OCCLUSION, "no-occlusion", NULL, CLI_FLAG, 0, 0, NULL, NULL, "saliency only",
     G_ANALYSIS, CLI_EXPLAIN, 0, 0},
    {OPT_SEED, "seed", "N", CLI_INT, SEED_RANGE, NULL, "1", "seed of the smoothgrad noise",
     G_ANALYSIS, CLI_EXPLAIN, 0, 0},
    {OPT_OUT_DIR, "out-dir", "DIR", CLI_PATH, 0, 0, NULL, NULL,
     "also write each map as CSV (raw values) and PGM (scaled to its maximum): "
     "saliency_K.csv/.pgm for class K and occlusion.csv/.pgm (DIR is made with a .fnn-explain "
     "file; one without it is refused)",
     G_ANALYSIS, CLI_EXPLAIN, 0, 0},
    {OPT_PERTURBATION, "perturbation", "LIST", CLI_LIST, 0, 0, NULL, "all",
     "comma-separated names from the list above", G_ANALYSIS, CLI_ROBUSTNESS, 0, 0},
    {OPT_SEED, "seed", "N", CLI_INT, SEED_RANGE, NULL, "1", "seed of the random draws",
     G_ANALYSIS, CLI_ROBUSTNESS, 0, 0},
    {OPT_SALIENCY_IMAGES, "saliency-images", "N", CLI_INT, COUNT_RANGE, NULL, "100",
     "images per class the saliency maps average over", G_ANALYSIS, CLI_REPORT, 0, 0},
    {OPT_OCCLUSION_IMAGES, "occlusion-images", "N", CLI_INT, COUNT_RANGE, NULL, "1000",
     "test images the occlusion map is measured on", G_ANALYSIS, CLI_REPORT, 0, 0},
    {OPT_PATCH, "patch", "N", CLI_INT, 1, 64, NULL, "4", "occluding square's side, pixels",
     G_ANALYSIS, CLI_REPORT, 0, 0},
    {OPT_STRIDE, "stride", "N", CLI_INT, 1, 64, NULL, "2", "its step, pixels", G_ANALYSIS,
     CLI_REPORT, 0, 0},
    {OPT_SEED, "seed", "N", CLI_INT, SEED_RANGE, NULL, "42",
     "SmoothGrad noise and random perturbations", G_ANALYSIS, CLI_REPORT, 0, 0},

    /* ---------------------------------------------------------------- export */
    {OPT_ONNX, "onnx", "OUT", CLI_PATH, 0, 0, NULL, NULL, "the ONNX file to write", G_OUTPUT,
     CLI_EXPORT, 0, 0},
    {OPT_BATCH, "batch", "N", CLI_INT, 1, 1 << 20, NULL, "dynamic",
     "fix the batch size at N instead of a dynamic \"batch\" dimension, for runtimes that need "
     "one",
     G_OUTPUT, CLI_EXPORT, 0, 0},

    /* ---------------------------------------------------------------- data */
    {OPT_DATA, "data", "PATH", CLI_PATH, 0, 0, NULL, FNN_DEFAULT_DATA_DIR,
     "IDX directory (gzipped or plain files), image folder tree, CSV file or CIFAR-10 "
     "directory; detected",
     G_DATA, DATA_READERS | CLI_SEARCH, 0, 0},
    {OPT_TEST_DATA, "test-data", "PATH", CLI_PATH, 0, 0, NULL, "--data",
     "where the test set lives when not beside the training set: a whole set (a folder tree, "
     "a CSV or IDX file) or the test split of a directory",
     G_DATA, DATA_READERS, 0, 0},
    {OPT_IMAGE_SIZE, "image-size", "HxW", CLI_SIZE, 0, 0, NULL, "the data's",
     "resize folder images to H rows and W columns (N for NxN) by area averaging",
     G_DATA, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_IMAGE_SIZE, "image-size", "HxW", CLI_SIZE, 0, 0, NULL, "the model's input",
     "resize folder images to H rows and W columns (N for NxN) by area averaging",
     G_DATA, ANALYSES, 0, 0},
    {OPT_CHANNELS, "channels", "1|3", CLI_CHOICE, 0, 0, "1,3", "what the data holds",
     "convert images to grey (1) or colour (3)", G_DATA, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_CHANNELS, "channels", "1|3", CLI_CHOICE, 0, 0, "1,3", "the model's input",
     "convert images to grey (1) or colour (3)", G_DATA, ANALYSES, 0, 0},
    {OPT_NORMALIZE, "normalize", "NAME", CLI_CHOICE, 0, 0, "scale,standardize", "scale",
     "scale: pixels / 255; standardize: per channel, the training split's mean and standard "
     "deviation, stored in the model",
     G_DATA, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_SKIP_BAD, "skip-bad-images", NULL, CLI_FLAG, 0, 0, NULL, NULL,
     "skip (and count) image files that cannot be read instead of stopping", G_DATA,
     DATA_READERS, CLI_RUN_SETUP, 0},
    {OPT_SPLIT, "split", "NAME", CLI_CHOICE, 0, 0, "test,train", "test",
     "test (the test split) or train", G_DATA, CLI_EVAL | CLI_EXPLAIN | CLI_ROBUSTNESS, 0, 0},
    {OPT_VAL_SPLIT, "val-split", "X", CLI_REAL, 0.0, 0.99, NULL, "0.2",
     "fraction of the training split held out for validation (see --split)", G_DATA, CLI_TRAIN,
     CLI_RUN_SETUP, 0},
    {OPT_SPLIT, "split", "NAME", CLI_CHOICE, 0, 0, "last,stratified",
     "last for IDX and CIFAR-10, stratified for folders and CSV",
     "how --val-split holds images out: last (the end of the training split, as Keras does) or "
     "stratified (every class in proportion, drawn with --seed)",
     G_DATA, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_LIMIT, "limit", "N", CLI_INT, COUNT_RANGE, NULL, "all",
     "use only the first N images of the training split, in the order read", G_DATA, CLI_TRAIN,
     CLI_RUN_SETUP, 0},
    {OPT_LIMIT, "limit", "N", CLI_INT, COUNT_RANGE, NULL, "all", "use the first N images only",
     G_DATA, CLI_EVAL | CLI_ROBUSTNESS, 0, 0},
    {OPT_LIMIT, "limit", "N", CLI_INT, 0, 100000000.0, NULL, "1000",
     "use the first N images, 0 for all", G_DATA, CLI_EXPLAIN, 0, 0},
    {OPT_LIMIT, "limit", "N", CLI_INT, COUNT_RANGE, NULL, "all 10000",
     "use the first N test images for everything", G_DATA, CLI_REPORT, 0, 0},
    {OPT_LIMIT, "limit", "N", CLI_INT, COUNT_RANGE, NULL, "all",
     "from a folder or an IDX file, the first N images only", G_DATA, CLI_PREDICT, 0, 0},
    {OPT_TEST_LIMIT, "test-limit", "N", CLI_INT, COUNT_RANGE, NULL, "all",
     "evaluate on the first N test images", G_DATA, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_NO_TEST, "no-test", NULL, CLI_FLAG, 0, 0, NULL, NULL,
     "do not read the test set at all (model selection on validation)", G_DATA, CLI_TRAIN,
     CLI_RUN_SETUP, 0},
    {OPT_CLASSES, "classes", "LIST", CLI_LIST, 0, 0, NULL, NULL,
     "keep only these classes, e.g. 5,6,7,8,9, relabelled 0..k-1 in the order given (in every "
     "split); a preset's last layer gets k units, an --arch of your own must end with "
     "dense:k:softmax",
     G_DATA, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_PER_CLASS, "per-class", "N", CLI_INT, COUNT_RANGE, NULL, "all",
     "keep the first N training images of each class (after the validation split)", G_DATA,
     CLI_TRAIN, CLI_RUN_SETUP, 0},

    /* ---------------------------------------------------------------- model and optimisation */
    {OPT_ARCH, "arch", "SPEC", CLI_TEXT, 0, 0, NULL, "mlp = \"" FNN_DEFAULT_ARCH "\"",
     "architecture spec or preset\n"
     "tokens: flatten, dense:UNITS[:relu|softmax|linear], dropout:RATE, "
     "conv2d:FILTERS:KERNEL[:sSTRIDE][:same|valid][:nobias][:he][:relu], maxpool:SIZE[:STRIDE], "
     "avgpool:SIZE[:STRIDE], globalavgpool, batchnorm[:MOMENTUM[:EPS]], relu, leakyrelu[:ALPHA], "
     "elu[:ALPHA], tanh, sigmoid, and residual ... end around a block that keeps its input's "
     "shape; presets: mlp, cnn, resnet (fnn summary --arch NAME), and two whole recipes "
     "(options given override theirs): fast, its architecture with " FAST_RECIPE "; best, the "
     "same architecture with " BEST_RECIPE,
     G_MODEL, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_ARCH, "arch", "SPEC", CLI_TEXT, 0, 0, NULL, NULL,
     "describe a spec or preset without a model file (see fnn train --help)", G_MODEL,
     CLI_SUMMARY, 0, 0},
    {OPT_INPUT_SHAPE, "input-shape", "CxHxW", CLI_SHAPE, 0, 0, NULL, "1x28x28",
     "with --arch: the input's channels (1 or 3), rows and columns", G_MODEL, CLI_SUMMARY, 0, 0},
    {OPT_EPOCHS, "epochs", "N", CLI_INT, 1, 100000, NULL, "10", "passes over the training split",
     G_MODEL, CLI_TRAIN, 0, 0},
    {OPT_BATCH_SIZE, "batch-size", "N", CLI_INT, 1, 65536, NULL, "32", "images per step",
     G_MODEL, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_OPTIMIZER, "optimizer", "NAME", CLI_CHOICE, 0, 0, "adam,adamw,sgd", "adam",
     "adam, adamw or sgd", G_MODEL, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_LR, "lr", "X", CLI_REAL, 1e-12, 1e3, NULL, "0.001 for adam, 0.01 for sgd",
     "learning rate", G_MODEL, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_MOMENTUM, "momentum", "X", CLI_REAL, 0.0, 0.999999, NULL, "0", "SGD momentum", G_MODEL,
     CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_WEIGHT_DECAY, "weight-decay", "X", CLI_REAL, 0.0, 1.0, NULL, "0; 0.004 for adamw",
     "on kernels: L2 (X w added to the gradient) with adam and sgd, decoupled with adamw",
     G_MODEL, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_NESTEROV, "nesterov", NULL, CLI_FLAG, 0, 0, NULL, "off",
     "SGD: Nesterov momentum (Keras's form)", G_MODEL, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_SEED, "seed", "N", CLI_INT, SEED_RANGE, NULL, "42",
     "seeds initialisation, shuffling, dropout and augmentation; the same seed and thread count "
     "give the same numbers, bit for bit",
     G_MODEL, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_THREADS, "threads", "N", CLI_INT, 0, 1024, NULL, "0",
     "threads to train with; 0: the cores that other processes leave free, measured while the "
     "data loads (a team waits for its slowest thread, so one on a core another process holds "
     "slows every step). The run's first lines say how many; give that count to repeat its "
     "numbers", G_RUN, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_THREADS, "threads", "N", CLI_INT, 0, 1024, NULL, "0",
     "threads to use, 0 for every core", G_RUN,
     CLI_EVAL | CLI_PREDICT | CLI_EXPLAIN | CLI_ROBUSTNESS | CLI_REPORT, CLI_RUN_SETUP, 0},
    {OPT_TTA, "tta", "NAME", CLI_CHOICE, 0, 0, "none,flip", "none",
     "test-time augmentation of the validation set and of the final test evaluation: none, or "
     "flip (each image's class probabilities averaged with its left-right mirror's); training "
     "itself is unchanged", G_RUN, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_TTA, "tta", "NAME", CLI_CHOICE, 0, 0, "none,flip", "none",
     "test-time augmentation: none, or flip (each image's class probabilities averaged with "
     "those of its left-right mirror; the metrics, confusion matrix and calibration all read "
     "the averaged ones)", G_RUN, CLI_EVAL | CLI_PREDICT | CLI_REPORT, 0, 0},

    /* ---------------------------------------------------------------- schedule */
    {OPT_LR_SCHEDULE, "lr-schedule", "NAME", CLI_CHOICE, 0, 0,
     "constant,step,cosine,plateau,onecycle",
     "constant",
     "constant, step, cosine, plateau or onecycle\n"
     "step: lr * GAMMA^floor(epoch / N), epochs counted from 0\n"
     "cosine: lr * (1 + cos(pi * s / S)) / 2, s steps after warm-up of S\n"
     "plateau: lr * FACTOR after PATIENCE epochs without the validation loss improving by 1e-4 "
     "(Keras's ReduceLROnPlateau)\n"
     "onecycle: per step, linearly up to lr at the fraction --lr-peak-at of the steps, then "
     "linearly down to about 0 at the end (airbench's triangle, PyTorch's OneCycleLR); it warms "
     "up itself",
     G_SCHEDULE, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_LR_STEP_EPOCHS, "lr-step-epochs", "N", CLI_INT, 1, 100000, NULL, "10",
     "step: epochs between cuts", G_SCHEDULE, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_LR_GAMMA, "lr-gamma", "G", CLI_REAL, 1e-9, 1e3, NULL, "0.1", "step: factor at each cut",
     G_SCHEDULE, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_LR_PATIENCE, "lr-patience", "N", CLI_INT, 1, 100000, NULL, "2",
     "plateau: epochs without improvement before a cut", G_SCHEDULE, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_LR_FACTOR, "lr-factor", "F", CLI_REAL, 1e-9, 0.999999, NULL, "0.5",
     "plateau: factor at each cut, in (0, 1)", G_SCHEDULE, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_LR_MIN, "lr-min", "X", CLI_REAL, 0.0, 1e3, NULL, "0", "plateau: lowest rate", G_SCHEDULE,
     CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_LR_PEAK_AT, "lr-peak-at", "F", CLI_REAL, 1e-6, 0.999999, NULL, "0.25",
     "onecycle: the fraction of the steps at which the rate peaks, in (0, 1)", G_SCHEDULE,
     CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_WARMUP_EPOCHS, "warmup-epochs", "N", CLI_INT, 0, 100000, NULL, "0",
     "linear warm-up from lr/W to lr over the first N epochs' W steps, before any schedule",
     G_SCHEDULE, CLI_TRAIN, CLI_RUN_SETUP, 0},

    /* ---------------------------------------------------------------- regularisation */
    {OPT_CLIP_NORM, "clip-norm", "X", CLI_REAL, 1e-12, 1e30, NULL, "off",
     "scale each step's gradients to a global L2 norm of at most X", G_REG, CLI_TRAIN,
     CLI_RUN_SETUP, 0},
    {OPT_LABEL_SMOOTHING, "label-smoothing", "X", CLI_REAL, 0.0, 0.999999, NULL, "0",
     "train against targets (1 - X) one-hot + X / classes (Keras's label_smoothing); the training "
     "loss shown is the smoothed one, validation and test losses stay plain cross-entropy",
     G_REG, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_BN_LR_SCALE, "bn-lr-scale", "X", CLI_REAL, 1e-6, 1e6, NULL, "1",
     "the learning rate of batch norm's scale and shift and of every bias (the tensors without "
     "weight decay) is the schedule's times X (airbench trains batch norm's biases faster)",
     G_REG, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_EMA, "ema", "DECAY", CLI_REAL, 1e-6, 0.999999, NULL, "off",
     "keep an exponential moving average of the weights and of batch norm's statistics, with "
     "this decay per step (e.g. 0.999), warmed up as min(DECAY, (1 + t) / (10 + t)) at step t "
     "(TensorFlow's ExponentialMovingAverage). Validation, early stopping and the saved model "
     "use the averaged weights; checkpoints keep them", G_REG, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_EMA_EVERY, "ema-every", "N", CLI_INT, 1, 1000000, NULL, "1",
     "with --ema: update the average after every N-th step only, at decay DECAY^N (the same "
     "horizon in steps for N times fewer passes over the weights; airbench's is 5)", G_REG,
     CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_AUG_SHIFT, "aug-shift", "N", CLI_INT, 0, 64, NULL, "0",
     "augment training batches: shift by up to N pixels each way", G_REG, CLI_TRAIN,
     CLI_RUN_SETUP, 0},
    {OPT_AUG_FLIP, "aug-flip", NULL, CLI_FLAG, 0, 0, NULL, "off",
     "augment: mirror left-right with probability 1/2", G_REG, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_AUG_ROTATE, "aug-rotate", "DEG", CLI_REAL, 0.0, 180.0, NULL, "0",
     "augment: rotate by up to DEG degrees either way", G_REG, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_AUG_ERASE, "aug-erase", "P", CLI_REAL, 0.0, 1.0, NULL, "0",
     "augment: with probability P erase a random rectangle of 2-25% of the image (random "
     "erasing / cutout); augmentation is drawn from --seed and touches training batches only",
     G_REG, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_EARLY_STOPPING, "early-stopping", "N", CLI_INT, 1, 100000, NULL, "off",
     "stop after N epochs without the monitored metric improving, and restore the best epoch's "
     "weights (also at the last epoch)",
     G_REG, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_MONITOR, "monitor", "METRIC", CLI_CHOICE, 0, 0, "val_loss,val_accuracy", "val_loss",
     "val_loss or val_accuracy, for --early-stopping", G_REG, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_FOLDS, "folds", "K", CLI_INT, 2, CLI_MAX_FOLDS, NULL, NULL,
     "k-fold cross-validation on the training file instead of one run: K trainings, each "
     "validating on one fold; reports the mean and sample standard deviation of the validation "
     "accuracy. Saves no model and never reads the test set",
     G_REG, CLI_TRAIN, CLI_RUN_SETUP, 0},

    /* ---------------------------------------------------------------- checkpoints */
    {OPT_CHECKPOINT, "checkpoint", "PATH", CLI_PATH, 0, 0, NULL, NULL,
     "write a checkpoint after every epoch (atomically) with weights, optimizer and schedule "
     "state, RNG state, epoch and history",
     G_CHECKPOINT, CLI_TRAIN, 0, 0},
    {OPT_RESUME, "resume", "PATH", CLI_PATH, 0, 0, NULL, NULL,
     "continue the run in checkpoint PATH up to --epochs (required); its data, model and "
     "training options are reused: any of them given again must have the checkpoint's value "
     "(so the first run's command line works), while --epochs, --data, --checkpoint [PATH], "
     "--out, --history, --quiet and --json may change. The result is bit for bit that of an "
     "uninterrupted run; a cosine schedule spans --epochs, so keep --epochs the same there",
     G_CHECKPOINT, CLI_TRAIN, 0, 0},

    /* ---------------------------------------------------------------- transfer */
    {OPT_INIT_FROM, "init-from", "MODEL", CLI_PATH, 0, 0, NULL, NULL,
     "start from the weights of MODEL's layers that match this model's (same position and "
     "shape); the others are initialised from --seed. Prints what was loaded and what was not",
     G_TRANSFER, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_RESET_HEAD, "reset-head", NULL, CLI_FLAG, 0, 0, NULL, NULL,
     "with --init-from: leave the last layer initialised even where its shape matches (a new "
     "task with as many classes)",
     G_TRANSFER, CLI_TRAIN, CLI_RUN_SETUP, 0},
    {OPT_FREEZE, "freeze", "N", CLI_INT, 0, 4096, NULL, NULL,
     "keep the first N layers (as fnn summary numbers them from 1) fixed; a frozen batchnorm "
     "keeps gamma and beta but its moving statistics still follow the new data in training mode",
     G_TRANSFER, CLI_TRAIN, CLI_RUN_SETUP, 0},

    /* ---------------------------------------------------------------- output */
    {OPT_OUT, "out", "MODEL", CLI_PATH, 0, 0, NULL, "model.safetensors",
     "model file, safetensors", G_OUTPUT, CLI_TRAIN, 0, 0},
    {OPT_HISTORY, "history", "PATH", CLI_PATH, 0, 0, NULL,
     "MODEL without .safetensors, plus .history.csv; none when MODEL is a device",
     "per-epoch metrics, CSV, or JSON if PATH ends in .json. Both are put in place together, and "
     "only when the run succeeds. No output may be an input (the data, --init-from, --resume) "
     "or another output, however spelled; a symbolic link is written through, a character "
     "device or FIFO written to, a directory refused",
     G_OUTPUT, CLI_TRAIN, 0, 0},
    {OPT_OUT, "out", "PATH", CLI_PATH, 0, 0, NULL, "report.html",
     "the page; figures go to PATH less .html, + _files/ (fnn's: made with a .fnn-report file, "
     "and refused without one); both are put in place only when the whole report is written",
     G_OUTPUT, CLI_REPORT, 0, 0},
    {OPT_QUIET, "quiet", NULL, CLI_FLAG, 0, 0, NULL, NULL, "print nothing but errors", G_OUTPUT,
     CLI_TRAIN, 0, 0},
    {OPT_JSON, "json", NULL, CLI_FLAG, 0, 0, NULL, NULL,
     "print one JSON document with everything instead of text", G_OUTPUT,
     CLI_TRAIN | CLI_EVAL | CLI_ROBUSTNESS | CLI_SUMMARY, 0, 0},
    {OPT_JSON, "json", NULL, CLI_FLAG, 0, 0, NULL, NULL,
     "print one JSON document: {\"model_file\", \"images\": [{\"path\", \"top\": [{\"index\", "
     "\"label\", \"probability\"}, ...]}, ...]}",
     G_OUTPUT, CLI_PREDICT, 0, 0},
    {OPT_JSON, "json", NULL, CLI_FLAG, 0, 0, NULL, NULL,
     "print one JSON document, maps included, instead of the table", G_OUTPUT, CLI_EXPLAIN, 0, 0},
    {OPT_JSON, "json", NULL, CLI_FLAG, 0, 0, NULL, NULL,
     "print a JSON summary: files written, key numbers, findings", G_OUTPUT, CLI_REPORT, 0, 0},
    {OPT_JSON, "json", NULL, CLI_FLAG, 0, 0, NULL, NULL,
     "print {\"model_file\", \"onnx_file\", \"opset\", \"batch\", \"bytes\"} (nothing is printed "
     "when OUT is not a regular file, e.g. /dev/stdout)",
     G_OUTPUT, CLI_EXPORT, 0, 0},
    {0, NULL, NULL, CLI_FLAG, 0, 0, NULL, NULL, NULL, NULL, 0, 0, 0},
};

static const cli_recipe recipes[] = {
    /* Chosen on the validation split (docs/experiments.md, "Time to accuracy"). */
    {"fast", FAST_RECIPE},
    {"best", BEST_RECIPE},
};

const cli_recipe *cli_recipe_named(const char *arch)
{
    for (size_t i = 0; arch && i < sizeof recipes / sizeof recipes[0]; i++)
        if (!strcmp(arch, recipes[i].name))
            return &recipes[i];
    return NULL;
}

const cli_option *cli_option_named(unsigned cmd, const char *name)
{
    for (const cli_option *o = cli_options; o->name; o++)
        if ((o->cmds & cmd) && !strcmp(o->name, name))
            return o;
    return NULL;
}

const cli_option *cli_option_of(unsigned cmd, int id)
{
    for (const cli_option *o = cli_options; o->name; o++)
        if ((o->cmds & cmd) && o->id == id)
            return o;
    return NULL;
}

#define NROWS (sizeof cli_options / sizeof cli_options[0])

/* getopt_long's arrays for a command: its rows, then --help; and the short options, ":h" and
 * the rows' letters (':' first: a missing value is told apart from an unknown option). */
static const struct option *longopts_for(unsigned cmd, const char **shortopts)
{
    static struct option opts[NROWS + 1];
    static char letters[2 * NROWS + 3];
    static unsigned built;
    if (built != cmd) {
        int n = 0, k = 0;
        letters[k++] = ':';
        letters[k++] = 'h';
        for (const cli_option *o = cli_options; o->name; o++) {
            if (!(o->cmds & cmd))
                continue;
            opts[n++] = (struct option){o->name, o->metavar ? required_argument : no_argument,
                                        NULL, o->id};
            if (o->short_name) {
                letters[k++] = o->short_name;
                if (o->metavar)
                    letters[k++] = ':';
            }
        }
        opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
        opts[n] = (struct option){NULL, 0, NULL, 0};
        letters[k] = '\0';
        built = cmd;
    }
    *shortopts = letters;
    return opts;
}

int cli_next_option(const char *cmd, unsigned bit, int argc, char **argv)
{
    opterr = 0;
    const char *shortopts;
    const struct option *longopts = longopts_for(bit, &shortopts);
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (c == ':') {
        cli_error(cmd, EXIT_USAGE, "option '%s' needs a value (see fnn %s --help)",
                  cli_bad_option(argv), cmd);
        return 0;
    }
    if (c == '?') {
        cli_error(cmd, EXIT_USAGE, "unknown option '%s' (see fnn %s --help)",
                  cli_bad_option(argv), cmd);
        return 0;
    }
    for (const cli_option *o = cli_options; c > 0 && c < OPT_FIRST && c != 'h' && o->name; o++)
        if ((o->cmds & bit) && o->short_name == c)
            return o->id;
    return c;
}

int cli_unhandled_option(const char *cmd, unsigned bit, int id)
{
    const cli_option *o = cli_option_of(bit, id);
    return cli_error(cmd, EXIT_USAGE, "unknown option '--%s' (see fnn %s --help)",
                     o ? o->name : "?", cmd);
}

/* Writes text's words from column `col` on, wrapped before `width` columns, continuing a line
 * now at column `at`; '\n' starts a new line. Returns the column it ends at. */
static int wrap(FILE *f, const char *text, int at, int col, int width)
{
    int first = 1; /* no space before the first word: the caller has placed it */
    for (const char *p = text; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        if (*p == '\n') {
            fprintf(f, "\n%*s", col, "");
            at = col;
            first = 1;
            p++;
            continue;
        }
        int word = (int)strcspn(p, " \n");
        if (!first && at + 1 + word > width) {
            fprintf(f, "\n%*s", col, "");
            at = col;
            first = 1;
        }
        at += fprintf(f, "%s%.*s", first ? "" : " ", word, p);
        first = 0;
        p += word;
    }
    return at;
}

void cli_print_options(FILE *f, unsigned cmd)
{
    enum { WIDTH = 92, MAX_COL = 26 };
    const char *groups[32];
    int ngroups = 0, col = 0;
    for (const cli_option *o = cli_options; o->name; o++) {
        if (!(o->cmds & cmd))
            continue;
        int len = 4 + (o->short_name ? 4 : 0) + (int)strlen(o->name) +
                  (o->metavar ? 1 + (int)strlen(o->metavar) : 0) + 2;
        col = len > col && len <= MAX_COL ? len : col;
        int seen = 0;
        for (int g = 0; g < ngroups; g++)
            seen |= !strcmp(groups[g], o->group);
        if (!seen && ngroups < 32)
            groups[ngroups++] = o->group;
    }
    for (int g = 0; g < ngroups; g++) {
        fprintf(f, "%s:\n", groups[g]);
        for (const cli_option *o = cli_options; o->name; o++) {
            if (!(o->cmds & cmd) || strcmp(o->group, groups[g]))
                continue;
            char letter[8] = "";
            if (o->short_name)
                snprintf(letter, sizeof letter, "-%c, ", o->short_name);
            int at = fprintf(f, "  %s--%s%s%s", letter, o->name, o->metavar ? " " : "",
                             o->metavar ? o->metavar : "");
            if (at + 2 > col) {
                fprintf(f, "\n%*s", col, "");
            } else {
                fprintf(f, "%*s", col - at, "");
            }
            at = wrap(f, o->help, col, col, WIDTH);
            if (o->def) {
                char def[160];
                snprintf(def, sizeof def, "[%s]", o->def);
                if (at + 1 + (int)strlen(def) > WIDTH)
                    fprintf(f, "\n%*s%s", col, "", def);
                else
                    fprintf(f, " %s", def);
            }
            fputc('\n', f);
        }
    }
    fprintf(f, "  -h, --help%*sthis help\n", col - 12 > 1 ? col - 12 : 1, "");
}

int cli_opt_int(const char *cmd, unsigned bit, int id, const char *text, long *out)
{
    const cli_option *o = cli_option_of(bit, id);
    char opt[64];
    snprintf(opt, sizeof opt, "--%s", o->name);
    return cli_int(cmd, opt, text, (long)o->lo, (long)o->hi, out);
}

int cli_opt_real(const char *cmd, unsigned bit, int id, const char *text, double *out)
{
    const cli_option *o = cli_option_of(bit, id);
    char opt[64];
    snprintf(opt, sizeof opt, "--%s", o->name);
    return cli_double(cmd, opt, text, o->lo, o->hi, out);
}

int cli_opt_choice(const char *cmd, unsigned bit, int id, const char *text, int *out)
{
    const cli_option *o = cli_option_of(bit, id);
    int index = 0, count = 1;
    for (const char *c = o->choices; *c; c++)
        count += *c == ',';
    for (const char *c = o->choices;; index++) {
        size_t len = strcspn(c, ",");
        if (strlen(text) == len && !strncmp(c, text, len)) {
            *out = index;
            return 1;
        }
        if (!c[len])
            break;
        c += len + 1;
    }
    /* "expected adam, adamw or sgd": the choices as a sentence. */
    char list[256] = "";
    index = 0;
    for (const char *c = o->choices;; index++) {
        size_t len = strcspn(c, ","), used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%.*s",
                 index == 0 ? "" : index == count - 1 ? " or " : ", ", (int)len, c);
        if (!c[len])
            break;
        c += len + 1;
    }
    cli_error(cmd, EXIT_USAGE, "--%s: expected %s, got '%s'", o->name, list, text);
    return 0;
}

/* One side of a size: 1..4096, digits only. */
static int side(const char *text, size_t len, int *out)
{
    if (len == 0 || len > 4)
        return 0;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return 0;
        v = v * 10 + (text[i] - '0');
    }
    *out = v;
    return v >= 1 && v <= 4096;
}

/* Splits text at 'x' into up to n sides; the count found, or 0 when a side is not 1..4096. */
static int sides(const char *text, int n, int *out)
{
    int got = 0;
    for (const char *p = text;; got++) {
        size_t len = strcspn(p, "xX");
        if (got == n || !side(p, len, &out[got]))
            return 0;
        if (!p[len])
            return got + 1;
        p += len + 1;
    }
}

int cli_parse_size(const char *cmd, const char *opt, const char *text, int *h, int *w)
{
    int v[2], n = sides(text, 2, v);
    if (!n) {
        cli_error(cmd, EXIT_USAGE, "%s: expected HxW or N, each in 1..4096, got '%s'", opt, text);
        return 0;
    }
    *h = v[0];
    *w = n == 2 ? v[1] : v[0];
    return 1;
}

int cli_parse_shape(const char *cmd, const char *opt, const char *text, int *c, int *h, int *w)
{
    int v[3];
    if (sides(text, 3, v) != 3 || (v[0] != 1 && v[0] != 3)) {
        cli_error(cmd, EXIT_USAGE, "%s: expected CxHxW with C 1 or 3 and H, W in 1..4096, "
                  "got '%s'", opt, text);
        return 0;
    }
    *c = v[0];
    *h = v[1];
    *w = v[2];
    return 1;
}
