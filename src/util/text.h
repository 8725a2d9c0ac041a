/* Text that came from a file, made safe to show: control characters (C0, DEL, C1), which a
 * terminal runs as escape sequences, bidirectional overrides, which reorder what follows, and
 * bytes that are not UTF-8 become '?'. One filter for every name fnn prints, to a terminal, an
 * HTML page or a figure. */
#ifndef FNN_UTIL_TEXT_H
#define FNN_UTIL_TEXT_H

/* Filters s in place (it can only shrink); the control characters in keep (e.g. "\n") stay. */
void fnn_text_printable(char *s, const char *keep);

/* The k class names stored in a model file's metadata (a JSON list of k strings), each made
 * printable; where the list is missing, malformed or of another length, or an entry is not a
 * string, the index ("0", "1", ...). k strings released with fnn_class_names_free; NULL when out
 * of memory. */
char **fnn_class_names(const char *json, int k);
void fnn_class_names_free(char **names, int k);

#endif
