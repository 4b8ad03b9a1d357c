/* plot.h - `incremf status --plot FILE.png`: the model's history as a picture, drawn by gnuplot.
 *
 * Top panel: the holdout RMSE of every recorded version (registry.jsonl), one point type per
 * kind of version (trained, fold-in, warm, retrain, rejected challenger), the current version
 * ringed. Bottom panel: the training curve (train and validation RMSE per sweep) of the latest
 * training run in DIR/train.jsonl.
 *
 * Nothing derived from data reaches a shell or the gnuplot script text: the numbers go to data
 * files in a private temporary directory, the script names only those files, and gnuplot is run
 * by fork/execvp with the script's path as its one argument. gnuplot writes into the temporary
 * directory; the PNG is then copied to FILE (tmp + rename). */
#ifndef IMF_PLOT_H
#define IMF_PLOT_H
#include "incremf.h"

/* Collective over comm (rank 0 does the work). The gnuplot executable is `gnuplot` on PATH, or
 * $IMF_GNUPLOT. Missing gnuplot: IMF_ERR_RUNTIME with a message saying what to install; no
 * recorded version, or nothing to draw (no holdout RMSE and no training curve): IMF_ERR_NOTFOUND.
 * With no holdout RMSE (holdout.fraction = 0) only the training curve is drawn. */
imf_status imf_status_plot(MPI_Comm comm, const char *model_dir, const char *png_path);
#endif
