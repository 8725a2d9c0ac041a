#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/ (committed; rerun only to regenerate them).
Usage: fuzz/make_seeds.py BUILD_DIR (a CMake build holding libfnn.a). Valid model files are
saved by fnn itself (fuzz/seed_models.c), so they follow whatever the current writer produces."""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")


def idx_images(n, h, w, seed=1):
    px = bytes((i * 37 + seed) % 256 for i in range(n * h * w))
    return struct.pack(">IIII", 0x803, n, h, w) + px


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def idx_seed(name, images, labels, flags=0):
    # fuzz_idx.c's framing: flags, u16 image-file length, image file, label file.
    put("fuzz_idx", name, bytes([flags]) + struct.pack("<H", len(images)) + images + labels)


def idx_seeds():
    im, lb = idx_images(3, 4, 4), idx_labels([0, 9, 3])
    idx_seed("valid_plain", im, lb)
    idx_seed("valid_gz_in_harness", im, lb, flags=3)
    idx_seed("valid_gz_bytes", gzip.compress(im, mtime=0), gzip.compress(lb, mtime=0))
    idx_seed("labels_over_10", im, idx_labels([0, 200, 11]))
    idx_seed("bad_magic", b"\x01" + im[1:], lb)
    idx_seed("bad_type", im[:2] + b"\x0d" + im[3:], lb)
    idx_seed("bad_ndims", im[:3] + b"\x01" + im[4:], lb)
    idx_seed("truncated_images", im[:-5], lb)
    idx_seed("trailing_images", im + b"xx", lb)
    idx_seed("count_mismatch", im, idx_labels([1, 2]))
    idx_seed("zero_rows", struct.pack(">IIII", 0x803, 3, 0, 4), lb)
    idx_seed("huge_header", struct.pack(">IIII", 0x803, 10000000, 4096, 4096), lb)
    idx_seed("gz_truncated", gzip.compress(im, mtime=0)[:-9], lb)
    idx_seed("short_header", im[:6], lb)


def st_parse(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def st_build(header, data):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def model_seeds(build):
    out = os.path.join(CORPUS, "fuzz_model_file")
    ckpt = os.path.join(CORPUS, "fuzz_checkpoint")
    images = os.path.join(CORPUS, "fuzz_image")
    for d in (out, ckpt, images):
        os.makedirs(d, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "seed_models")
        pkgs = ["openblas", "libcjson", "cairo", "stb", "zlib"]
        env = dict(os.environ, PKG_CONFIG_PATH="/usr/lib/x86_64-linux-gnu/openblas-openmp/pkgconfig")
        libs = subprocess.run(["pkg-config", "--libs"] + pkgs, env=env, check=True,
                              capture_output=True, text=True).stdout.split()
        subprocess.run(["cc", "-O1", "-fopenmp", "-I", os.path.join(ROOT, "..", "include"), "-I", "/usr/include/stb",
                        os.path.join(ROOT, "seed_models.c"), os.path.join(build, "libfnn.a")]
                       + libs + ["-lm", "-o", exe], check=True)
        subprocess.run([exe, out, ckpt, images], check=True)
    checkpoint_variants(ckpt)
    image_variants(images)
    valid = {}
    for name in os.listdir(out):
        with open(os.path.join(out, name), "rb") as f:
            valid[name[len("valid_"):]] = f.read()

    header, data = st_parse(valid["mlp"])
    meta = header["__metadata__"]
    tensors = [k for k in header if k != "__metadata__"]

    def variant(name, edit, data_edit=None):
        hd = json.loads(json.dumps(header))
        edit(hd)
        put("fuzz_model_file", name, st_build(hd, data_edit(data) if data_edit else data))

    put("fuzz_model_file", "truncated", valid["mlp"][: len(valid["mlp"]) - 10])
    put("fuzz_model_file", "trailing_garbage", valid["mlp"] + b"\0\0\0\0")
    put("fuzz_model_file", "empty_header", st_build({}, b""))
    put("fuzz_model_file", "huge_header_length", struct.pack("<Q", 1 << 62) + b"{}")
    variant("wrong_dtype", lambda h: h[tensors[0]].update(dtype="F16"))
    variant("overlap", lambda h: h[tensors[1]].update(data_offsets=h[tensors[0]]["data_offsets"]))
    variant("offset_out_of_range",
            lambda h: h[tensors[-1]].update(data_offsets=[len(data), len(data) + 40]))
    variant("bad_arch", lambda h: h["__metadata__"].update(arch="flatten dense:0"))
    variant("other_arch", lambda h: h["__metadata__"].update(arch="flatten dense:5 dense:10:softmax"))
    variant("bad_input_shape", lambda h: h["__metadata__"].update(input_shape="[1, 4]"))
    variant("bad_class_names", lambda h: h["__metadata__"].update(class_names="[1,2]"))
    variant("bad_checksum", lambda h: h["__metadata__"].update(fnn_crc32="00000000"))
    variant("no_checksum", lambda h: h["__metadata__"].pop("fnn_crc32", None))
    variant("nan_weight", lambda h: None, lambda d: b"\x00\x00\xc0\x7f" + d[4:])
    variant("huge_weights", lambda h: h["__metadata__"].pop("fnn_crc32", None),
            lambda d: struct.pack("<f", 1e30) * (len(d) // 4))


def checkpoint_variants(d):
    with open(os.path.join(d, "valid_adam"), "rb") as f:
        blob = f.read()
    header, data = st_parse(blob)
    meta = header["__metadata__"]
    put("fuzz_checkpoint", "truncated", blob[:-7])
    put("fuzz_checkpoint", "model_file_not_checkpoint",
        open(os.path.join(CORPUS, "fuzz_model_file", "valid_mlp"), "rb").read())
    for key in list(meta):
        hd = json.loads(json.dumps(header))
        del hd["__metadata__"][key]
        put("fuzz_checkpoint", "no_" + key, st_build(hd, data))
    for t in [k for k in header if k != "__metadata__"][:3]:
        hd = json.loads(json.dumps(header))
        hd[t]["shape"] = [1] + hd[t]["shape"][1:] if len(hd[t]["shape"]) > 1 else [1]
        put("fuzz_checkpoint", "reshaped_" + t, st_build(hd, data))


def image_variants(d):
    # The harness's options byte goes first; the raw files stay as written for readability.
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        with open(path, "rb") as f:
            raw = f.read()
        os.remove(path)
        base = name[len("raw_"):]
        put("fuzz_image", base, b"\x40" + raw)
        put("fuzz_image", "inverted_3x3_" + base, b"\x82" + raw)
    pgm = b"P5\n3 2\n255\n" + bytes([0, 50, 100, 150, 200, 250])
    put("fuzz_image", "grey.pgm", b"\x40" + pgm)
    put("fuzz_image", "truncated.pgm", b"\x40" + pgm[:-3])
    put("fuzz_image", "huge_dims.pgm", b"\x40" + b"P5\n60000 60000\n255\n" + bytes(16))
    put("fuzz_image", "not_an_image", b"\x40hello")


def grid_seeds():
    grids = {
        "valid": "# a search grid\nlr = 0.001, 0.01\nbatch-size=32,64\n\narch = flatten dense:{units} dense:10:softmax\nunits = 16, 32\n",
        "comment_only": "# nothing\n\n   \n",
        "duplicate_key": "lr = 1\nlr = 2\n",
        "duplicate_value": "lr = 1, 1\n",
        "empty_value": "lr = 1,,2\n",
        "no_equals": "lr 0.1\n",
        "empty_key": " = 1\n",
        "unclosed_placeholder": "arch = dense:{units\nunits = 1\n",
        "crlf": "lr = 0.1\r\nepochs = 1\r\n",
        "nul_byte": "lr = 0.1\0\n",
        "long_line": "lr = " + ",".join(str(i) for i in range(200)) + "\n",
    }
    for name, text in grids.items():
        put("fuzz_grid", name, text.encode())


def csv_seeds():
    files = {
        "square": b"label,p1,p2,p3,p4\n1,0,1,2,255\n0,9,8,7,6\n",
        "crlf_no_newline": b"label,p1,p2,p3,p4\r\n3,0,1,2,255\r\n\r\n2,9,8,7,6",
        "out_of_range": b"label,p1,p2,p3,p4\n1,0,256,0,0\n",
        "bad_fields": b"label,p1,p2,p3,p4\nx,0,1,0,0\n1,2\n",
    }
    for name, data in files.items():
        put("fuzz_csv", name, data)


def arch_seeds():
    specs = [
        ("mlp", b"\x00\x1b\x1b", "mlp"),
        ("cnn", b"\x00\x1b\x1b", "cnn"),
        ("resnet", b"\x00\x1b\x1b", "resnet"),
        ("default", b"\x00\x1b\x1b", "flatten dense:128:relu dropout:0.5 dense:64:relu dense:10:softmax"),
        ("all_tokens", b"\x02\x0f\x0f",
         "conv2d:4:3:s1:same:nobias:he:relu batchnorm:0.9:0.001 maxpool:2:2 avgpool:1 "
         "residual conv2d:4:3:same relu leakyrelu:0.2 elu:1.0 tanh sigmoid end globalavgpool "
         "flatten dense:8:linear dropout:0.1 dense:10"),
        ("bad_token", b"\x00\x07\x07", "flatten dense:10:softmax bogus"),
        ("unclosed_residual", b"\x00\x07\x07", "residual dense:4 dense:10:softmax"),
        ("shape_change_residual", b"\x00\x07\x07", "flatten residual dense:4 end dense:10:softmax"),
        ("too_big_kernel", b"\x00\x03\x03", "conv2d:2:9 flatten dense:10:softmax"),
        ("huge_dense", b"\x00\x1b\x1b", "flatten dense:1048576 dense:10:softmax"),
        ("empty", b"\x00\x00\x00", ""),
    ]
    for name, shape, spec in specs:
        put("fuzz_arch", name, shape + spec.encode())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for h in ("fuzz_idx", "fuzz_model_file", "fuzz_arch", "fuzz_checkpoint", "fuzz_image",
              "fuzz_grid", "fuzz_csv"):
        shutil.rmtree(os.path.join(CORPUS, h), ignore_errors=True)
    idx_seeds()
    model_seeds(os.path.abspath(sys.argv[1]))
    arch_seeds()
    grid_seeds()
    csv_seeds()
