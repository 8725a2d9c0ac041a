/* Internal to src/data: text shared by the IDX reader, the data-set finder and the sources. */
#ifndef FNN_DATA_IDX_H
#define FNN_DATA_IDX_H

/* Appended to every "file not found" message so the user learns where the data comes from. */
#define FNN_DATA_HINT                                                                        \
    "install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist) " \
    "or pass --data DIR"

#endif
