/* The option table (cli/options.c) against the commands that read it: every command's --help
 * lists exactly its rows, its parser takes exactly those options, fnn search takes every train
 * option as a grid key and nothing else, and the HxW and CxHxW value parsers. The table and its
 * helpers are compiled into this test to be read and called directly; the commands are run as a
 * user would run them. */
#define _GNU_SOURCE
/* CLI code, not part of libfnn: cli_error and the data options (cli_error waits on the signal
 * thread's lock), then the table and its helpers. First, as common.c sets its own feature
 * macros. */
#include "../cli/common.c"
#include "../cli/signals.c"
#include "../cli/options.c"
#include "../cli/analysis.c"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>


#define PATH_CAP 1024
#define RUN_TIMEOUT_S 60

static char g_base[PATH_CAP]; /* $FNN_TMP/test_options.work */

#define CLI_RUN_DIR g_base
#include "cli_harness.h"

static const struct {
    const char *name;
    unsigned bit;
} commands[] = {
    {"train", CLI_TRAIN},           {"eval", CLI_EVAL},     {"predict", CLI_PREDICT},
    {"explain", CLI_EXPLAIN},       {"robustness", CLI_ROBUSTNESS}, {"report", CLI_REPORT},
    {"search", CLI_SEARCH},         {"summary", CLI_SUMMARY}, {"export", CLI_EXPORT},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* A value the row accepts, so that a parser that knows the option goes on to the next. */
static const char *good_value(const cli_option *o)
{
    static char buf[64];
    switch (o->type) {
    case CLI_INT: snprintf(buf, sizeof buf, "%ld", (long)o->lo); return buf;
    case CLI_REAL: snprintf(buf, sizeof buf, "%g", o->lo); return buf;
    case CLI_CHOICE: snprintf(buf, sizeof buf, "%.*s", (int)strcspn(o->choices, ","), o->choices);
                     return buf;
    case CLI_SIZE: return "28x28";
    case CLI_SHAPE: return "1x28x28";
    case CLI_LIST: return o->id == OPT_CLASSES ? "0,1" : "noise";
    case CLI_FLAG: return NULL;
    default: return "x";
    }
}

/* Whether `--name` (as a whole) starts a line of the help text, after its short form if it has
 * one ("  -x, --name"), as an option line does. */
static int help_lists(const char *help, const char *name)
{
    char line[128];
    snprintf(line, sizeof line, "--%s", name);
    for (const char *p = strstr(help, line); p; p = strstr(p + 1, line)) {
        char after = p[strlen(line)];
        int starts = (p - help >= 3 && !strncmp(p - 3, "\n  ", 3)) ||
                     (p - help >= 7 && !strncmp(p - 7, "\n  -", 4) && !strncmp(p - 2, ", ", 2));
        if (starts && (after == ' ' || after == '\n'))
            return 1;
    }
    return 0;
}

/* Whether name is an unambiguous-looking prefix of one of the command's own option names:
 * getopt_long takes abbreviations, as fnn always has. */
static int abbreviates(unsigned bit, const char *name)
{
    for (const cli_option *o = cli_options; o->name; o++)
        if ((o->cmds & bit) && strlen(o->name) > strlen(name) &&
            !strncmp(o->name, name, strlen(name)))
            return 1;
    return 0;
}

/* Whether o is the table's first row of its name: a name is tested once per command. */
static int first_of_name(const cli_option *o)
{
    for (const cli_option *p = cli_options; p != o; p++)
        if (!strcmp(p->name, o->name))
            return 0;
    return 1;
}

/* The train options that fnn search sets for its trials itself (cli/search.c's list). */
static int search_sets(const char *name)
{
    static const char *const names[] = {"data", "out", "history", "json", "quiet", "threads",
                                        "no-test", "test-limit", "checkpoint", "resume", "folds"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(names[i], name))
            return 1;
    return 0;
}

/* The table itself: one row per name and per id in each command, values typed consistently. */
static void test_table_is_consistent(void **state)
{
    (void)state;
    for (const cli_option *a = cli_options; a->name; a++) {
        assert_true(a->id >= OPT_FIRST && a->id < OPT_END);
        assert_non_null(a->help);
        assert_non_null(a->group);
        assert_true(a->cmds != 0);
        if ((a->type == CLI_FLAG) != (a->metavar == NULL))
            fail_msg("--%s: a flag has no value placeholder, every other type has one", a->name);
        if ((a->type == CLI_CHOICE) != (a->choices != NULL))
            fail_msg("--%s: choices go with CLI_CHOICE only", a->name);
        if ((a->type == CLI_INT || a->type == CLI_REAL) && !(a->lo <= a->hi))
            fail_msg("--%s: empty range", a->name);
        for (const cli_option *b = a + 1; b->name; b++) {
            if (!(a->cmds & b->cmds))
                continue;
            if (!strcmp(a->name, b->name) || a->id == b->id)
                fail_msg("--%s and --%s: two rows of one command with the same name or id",
                         a->name, b->name);
        }
    }
}

/* Every command's --help lists exactly its rows, and nothing that is not one. */
static void test_help_lists_the_table(void **state)
{
    (void)state;
    for (size_t c = 0; c < NCOMMANDS; c++) {
        run_t r = FNN(commands[c].name, "--help");
        expect_code(&r, 0);
        for (const cli_option *o = cli_options; o->name; o++) {
            int listed = help_lists(r.out, o->name);
            int row = cli_option_named(commands[c].bit, o->name) != NULL;
            if (listed != row)
                fail_msg("fnn %s --help %s --%s, which the table %s", commands[c].name,
                         listed ? "lists" : "does not list", o->name,
                         row ? "gives it" : "does not give it");
        }
        /* ... and every option line it has is a row of the command (or --help itself). */
        for (const char *p = strstr(r.out, "\n  -"); p; p = strstr(p + 1, "\n  -")) {
            const char *at = p[4] == '-' ? p + 5 : !strncmp(p + 5, ", --", 4) ? p + 9 : NULL;
            if (!at)
                fail_msg("fnn %s --help: an option line of another form: %.40s",
                         commands[c].name, p + 1);
            char name[64];
            size_t len = strcspn(at, " \n=");
            snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), at);
            if (!strcmp(name, "help"))
                continue;
            if (!cli_option_named(commands[c].bit, name))
                fail_msg("fnn %s --help lists --%s, which is not in the table for it",
                         commands[c].name, name);
        }
        expect_contains(r.out, "--help", "-h, --help");
        run_free(&r);
    }
}

/* Each command's parser takes the options of its rows and refuses every other name the table
 * knows. fnn search also passes fnn train's options on to its trials. */
static void test_parsers_take_the_table(void **state)
{
    (void)state;
    for (size_t c = 0; c < NCOMMANDS; c++) {
        unsigned bit = commands[c].bit;
        unsigned takes = bit == CLI_SEARCH ? CLI_SEARCH | CLI_TRAIN : bit;
        for (const cli_option *o = cli_options; o->name; o++) {
            if (!first_of_name(o))
                continue;
            const cli_option *row = cli_option_named(takes, o->name);
            char opt[80], unknown[112];
            snprintf(opt, sizeof opt, "--%s", o->name);
            snprintf(unknown, sizeof unknown, "unknown option '%s'", opt);
            const char *value = good_value(row ? row : o);
            run_t r = value ? FNN(commands[c].name, opt, value, "--zz-not-an-option")
                            : FNN(commands[c].name, opt, "--zz-not-an-option");
            int refused = strstr(r.err, unknown) != NULL;
            if (r.code != 2)
                fail_msg("fnn %s %s %s --zz-not-an-option: exit status %d, expected 2\n%s",
                         commands[c].name, opt, value ? value : "", r.code, r.err);
            /* Taken: the parser went on to the next option (search's --grid and --grid-file
             * judge their value first, and search refuses by name the train options it sets). */
            if (row && (refused || (!strstr(r.err, "'--zz-not-an-option'") &&
                                    !strstr(r.err, "cannot be given to a search") &&
                                    row->id != OPT_GRID && row->id != OPT_GRID_FILE)))
                fail_msg("fnn %s refuses %s, which the table gives it:\n%s", commands[c].name,
                         opt, r.err);
            if (!row && !refused && !abbreviates(bit, o->name))
                fail_msg("fnn %s takes %s, which the table does not give it:\n%s",
                         commands[c].name, opt, r.err);
            run_free(&r);
        }
    }
}

/* fnn search: every fnn train option is a grid key (value options with a value train takes,
 * flags with on and off) unless the search sets it itself, and any other name is not. A second
 * key given also as a fixed option stops each search before it runs anything. */
static void test_search_grid_keys(void **state)
{
    (void)state;
    char out[PATH_CAP];
    pathf(out, "%s/search", g_base);
    for (const cli_option *o = cli_options; o->name; o++) {
        if (!first_of_name(o))
            continue;
        const cli_option *train_row = cli_option_named(CLI_TRAIN, o->name);
        int train = train_row != NULL;
        const char *value = good_value(train ? train_row : o);
        char grid[160];
        snprintf(grid, sizeof grid, "%s=%s", o->name, value ? value : "on,off");
        const char *other = strcmp(o->name, "epochs") ? "epochs" : "batch-size";
        char other_grid[64], other_opt[64];
        snprintf(other_grid, sizeof other_grid, "%s=2", other);
        snprintf(other_opt, sizeof other_opt, "--%s", other);
        run_t r = FNN("search", "--out", out, "--data", "/nonexistent", "--grid", grid, "--grid",
                      other_grid, other_opt, "2");
        expect_code(&r, 2);
        if (train && search_sets(o->name))
            expect_contains(r.err, grid, "cannot be a grid key");
        else if (train)
            expect_contains(r.err, grid, "given both as a grid key");
        else
            expect_contains(r.err, grid, "is not an fnn train option");
        assert_false(file_exists(out));
        run_free(&r);
    }
}

/* The HxW and CxHxW parsers: the values they take and the messages for the others, which name
 * the option and quote the value. */
static char *messages;
static size_t messages_len;

static void capture(void) { cli_error_stream = open_memstream(&messages, &messages_len); }

static void expect_message(const char *opt, const char *text)
{
    fclose(cli_error_stream);
    cli_error_stream = NULL;
    char quoted[80];
    snprintf(quoted, sizeof quoted, "'%s'", text);
    if (!strstr(messages, opt) || !strstr(messages, quoted))
        fail_msg("the message for %s %s does not name both: %s", opt, text, messages);
    free(messages);
    messages = NULL;
}

static void test_size_parser(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int h, w;
    } good[] = {{"28x28", 28, 28}, {"32", 32, 32}, {"1x4096", 1, 4096}, {"64x48", 64, 48},
                {"7X9", 7, 9}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int h = 0, w = 0;
        if (!cli_parse_size("test", "--image-size", good[i].text, &h, &w))
            fail_msg("--image-size %s refused", good[i].text);
        assert_int_equal(h, good[i].h);
        assert_int_equal(w, good[i].w);
    }
    static const char *const bad[] = {"0x5", "5x0", "4097", "28x", "x28", "28x28x3", "abc", "",
                                      "-1", "28 x 28", "+28", "28x-4", "99999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int h = -1, w = -1;
        capture();
        if (cli_parse_size("test", "--image-size", bad[i], &h, &w))
            fail_msg("--image-size '%s' taken as %dx%d", bad[i], h, w);
        expect_message("--image-size", bad[i]);
    }
}

static void test_shape_parser(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int c, h, w;
    } good[] = {{"1x28x28", 1, 28, 28}, {"3x32x32", 3, 32, 32}, {"3x1x4096", 3, 1, 4096}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int c = 0, h = 0, w = 0;
        if (!cli_parse_shape("test", "--input-shape", good[i].text, &c, &h, &w))
            fail_msg("--input-shape %s refused", good[i].text);
        assert_int_equal(c, good[i].c);
        assert_int_equal(h, good[i].h);
        assert_int_equal(w, good[i].w);
    }
    static const char *const bad[] = {"2x28x28", "4x8x8", "0x8x8", "3x32", "32", "3x32x32x1",
                                      "1x0x28", "1x28x4097", "1x28x", "rgb", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int c = -1, h = -1, w = -1;
        capture();
        if (cli_parse_shape("test", "--input-shape", bad[i], &c, &h, &w))
            fail_msg("--input-shape '%s' taken as %dx%dx%d", bad[i], c, h, w);
        expect_message("--input-shape", bad[i]);
    }
}

/* fnn summary --arch builds the spec for --input-shape, and the commands refuse bad sizes with
 * a usage error naming the option and the value. */
static void test_shapes_through_the_commands(void **state)
{
    (void)state;
    run_t r = FNN("summary", "--arch", "cnn", "--input-shape", "3x32x32", "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    const cJSON *shape = get(doc, "input_shape");
    assert_int_equal(cJSON_GetArraySize(shape), 3);
    assert_int_equal(cJSON_GetArrayItem(shape, 0)->valueint, 3);
    assert_int_equal(cJSON_GetArrayItem(shape, 1)->valueint, 32);
    assert_int_equal(cJSON_GetArrayItem(shape, 2)->valueint, 32);
    cJSON_Delete(doc);
    run_free(&r);

    r = FNN("summary", "--arch", "conv2d:4:3 flatten dense:10:softmax", "--input-shape", "1x2x2");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "(1, 2, 2)");
    run_free(&r);

    r = FNN("summary", "--arch", "mlp", "--input-shape", "2x28x28");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--input-shape");
    expect_contains(r.err, "stderr", "'2x28x28'");
    run_free(&r);

    r = FNN("summary", "model.safetensors", "--input-shape", "1x28x28");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--input-shape goes with --arch");
    run_free(&r);

    static const char *const readers[] = {"train", "eval", "explain", "robustness", "report"};
    for (size_t i = 0; i < sizeof readers / sizeof readers[0]; i++) {
        r = FNN(readers[i], "--image-size", "0x28", "model.safetensors");
        expect_code(&r, 2);
        expect_contains(r.err, readers[i], "--image-size");
        expect_contains(r.err, readers[i], "'0x28'");
        run_free(&r);
    }
}

/* --test-data: the test split from another directory, in train and in eval; it is an input
 * that no output may replace. The other new data options are refused until the library reads
 * more than IDX. */
/* --arch fast names a recipe: its architecture and its training options, read before the
 * options given, which override them; summary shows the same architecture, which --arch best
 * shares with options of its own. */
static void test_recipe_options(void **state)
{
    (void)state;
    char data[PATH_CAP], model[PATH_CAP];
    pathf(data, "%s/recipe_data", g_base);
    pathf(model, "%s/recipe.safetensors", g_base);
    make_data_dir(data);
    run_t r = FNN("train", "--data", data, "--arch", "fast", "--epochs", "1", "--lr", "0.001",
                  "--no-test", "--out", model, "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    const cJSON *c = get(doc, "config");
    assert_string_equal(get(c, "recipe")->valuestring, "fast");
    assert_int_equal((int)get_number(c, "epochs"), 1);              /* given */
    assert_true(fabs(get_number(c, "lr") - 0.001) < 1e-9);          /* given */
    assert_int_equal((int)get_number(c, "batch_size"), 64);         /* the recipe's */
    assert_true(fabs(get_number(c, "label_smoothing") - 0.1) < 1e-6);
    assert_true(fabs(get_number(c, "ema") - 0.999) < 1e-6);
    assert_int_equal((int)get_number(c, "ema_every"), 5);
    assert_string_equal(get(c, "tta")->valuestring, "flip");
    assert_string_equal(get(get(c, "lr_schedule"), "kind")->valuestring, "onecycle");
    assert_int_equal((int)get_number(get(c, "augment"), "shift"), 1);
    assert_true(cJSON_IsTrue(get(get(c, "augment"), "flip")));
    assert_int_equal((int)get_number(get(doc, "data"), "validation"), 0); /* --val-split 0 */
    char *spec = strdup(get(get(doc, "model"), "arch")->valuestring);
    cJSON_Delete(doc);
    run_free(&r);

    r = FNN("summary", "--arch", "fast", "--json");
    expect_code(&r, 0);
    doc = parse_json(r.out);
    assert_string_equal(get(doc, "arch")->valuestring, spec);
    assert_non_null(strstr(spec, "dropout:0.3"));
    cJSON_Delete(doc);
    run_free(&r);

    /* A validation split given overrides the recipe's none. */
    r = FNN("train", "--data", data, "--arch", "fast", "--epochs", "1", "--val-split", "0.25",
            "--no-test", "--out", model, "--json");
    expect_code(&r, 0);
    doc = parse_json(r.out);
    assert_int_equal((int)get_number(get(doc, "data"), "validation"), SYN_TRAIN / 4);
    cJSON_Delete(doc);
    run_free(&r);

    /* best: the same layers, its own options, and the validation split kept. */
    r = FNN("train", "--data", data, "--arch", "best", "--epochs", "1", "--no-test", "--out",
            model, "--json");
    expect_code(&r, 0);
    doc = parse_json(r.out);
    c = get(doc, "config");
    assert_string_equal(get(c, "recipe")->valuestring, "best");
    assert_string_equal(get(get(doc, "model"), "arch")->valuestring, spec);
    assert_true(fabs(get_number(get(c, "augment"), "erase") - 0.5) < 1e-6);
    assert_true(fabs(get_number(c, "ema") - 0.999) < 1e-6);
    assert_int_equal((int)get_number(c, "batch_size"), 64);
    assert_int_equal((int)get_number(get(doc, "data"), "validation"), SYN_TRAIN / 5);
    cJSON_Delete(doc);
    run_free(&r);
    r = FNN("train", "--help");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "--epochs 50"));
    run_free(&r);
    free(spec);

    /* Without a recipe, the plain defaults. */
    r = FNN("train", "--data", data, "--arch", "cnn", "--epochs", "1", "--limit", "64",
            "--no-test", "--out", model, "--json");
    expect_code(&r, 0);
    doc = parse_json(r.out);
    c = get(doc, "config");
    assert_true(cJSON_IsNull(get(c, "recipe")));
    assert_int_equal((int)get_number(c, "batch_size"), 32);
    assert_string_equal(get(c, "tta")->valuestring, "none");
    cJSON_Delete(doc);
    run_free(&r);
}

static void test_test_data(void **state)
{
    (void)state;
    char train_only[PATH_CAP], test_only[PATH_CAP], model[PATH_CAP], p[PATH_CAP];
    pathf(train_only, "%s/train_only", g_base);
    pathf(test_only, "%s/test_only", g_base);
    pathf(model, "%s/m.safetensors", g_base);
    make_data_dir(train_only);
    make_data_dir(test_only);
    unlink(pathf(p, "%s/t10k-images-idx3-ubyte", train_only));
    unlink(pathf(p, "%s/t10k-labels-idx1-ubyte", train_only));
    unlink(pathf(p, "%s/train-images-idx3-ubyte", test_only));
    unlink(pathf(p, "%s/train-labels-idx1-ubyte", test_only));

    run_t r = FNN("train", "--data", train_only, "--epochs", "1", "--out", model, "--quiet");
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", "t10k");
    assert_false(file_exists(model));
    run_free(&r);

    r = FNN("train", "--data", train_only, "--test-data", test_only, "--epochs", "1", "--out",
            model, "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    assert_int_equal((int)get_number(get(doc, "test"), "images"), SYN_TEST);
    cJSON_Delete(doc);
    run_free(&r);

    r = FNN("eval", model, "--data", train_only, "--test-data", test_only, "--json");
    expect_code(&r, 0);
    doc = parse_json(r.out);
    assert_int_equal((int)get_number(get(doc, "test"), "images"), SYN_TEST);
    cJSON_Delete(doc);
    run_free(&r);

    r = FNN("eval", model, "--data", train_only);
    expect_code(&r, 1);
    run_free(&r);

    /* An output over the test set given by --test-data is refused like one over --data's. */
    char images[PATH_CAP];
    pathf(images, "%s/t10k-images-idx3-ubyte", test_only);
    size_t before, after;
    free(read_all(images, &before));
    r = FNN("train", "--data", train_only, "--test-data", test_only, "--epochs", "1", "--out",
            images);
    assert_true(r.code != 0);
    expect_contains(r.err, "stderr", "--test-data");
    free(read_all(images, &after));
    assert_int_equal(before, after);
    run_free(&r);

    /* --resume keeps the checkpoint's --test-data, as it keeps its --data. */
    char checkpoint[PATH_CAP];
    pathf(checkpoint, "%s/run.ckpt", g_base);
    r = FNN("train", "--data", train_only, "--test-data", test_only, "--epochs", "1",
            "--checkpoint", checkpoint, "--out", model, "--quiet");
    expect_code(&r, 0);
    run_free(&r);
    r = FNN("train", "--resume", checkpoint, "--epochs", "2", "--out", model, "--json");
    expect_code(&r, 0);
    doc = parse_json(r.out);
    assert_int_equal((int)get_number(get(doc, "test"), "images"), SYN_TEST);
    cJSON_Delete(doc);
    run_free(&r);

    /* fnn search hands --test-data to its final test as well as to the trials. */
    char out[PATH_CAP];
    pathf(out, "%s/search_test_data", g_base);
    r = FNN("search", "--out", out, "--data", train_only, "--test-data", test_only, "--grid",
            "lr=0.001", "--epochs", "1", "--workers", "1", "--json");
    expect_code(&r, 0);
    doc = parse_json(r.out);
    assert_int_equal((int)get_number(get(get(doc, "final_test"), "test"), "images"), SYN_TEST);
    cJSON_Delete(doc);
    run_free(&r);

}

static int group_setup(void **state)
{
    (void)state;
    if (work_dir(g_base, sizeof g_base, "test_options") != 0)
        return -1;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_consistent),
        cmocka_unit_test(test_help_lists_the_table),
        cmocka_unit_test(test_parsers_take_the_table),
        cmocka_unit_test(test_search_grid_keys),
        cmocka_unit_test(test_size_parser),
        cmocka_unit_test(test_shape_parser),
        cmocka_unit_test(test_shapes_through_the_commands),
        cmocka_unit_test(test_recipe_options),
        cmocka_unit_test(test_test_data),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
