#!/usr/bin/env bash
# e2e_cli.sh - the first hour at the command line (issue 26): help, an unknown command and an
# unknown flag are answered without starting MPI (checked by making MPI_Init impossible), once per
# mpirun job; an expected refusal under mpirun is one line with its exit code, no abort block
# (with mpirun -q, as jobs/run-local.sh and the demo run it: nothing but that line); and the small
# items: EASE in the help, no "nan" for a missing validation set, no "0 Gflop/s" for CG iALS, the
# year in status, "did you mean" for a config key, parent directories created for --data/--model.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
here="$(cd "$(dirname "$0")" && pwd)"
tmp=$(mktemp -d /tmp/imf-e2e-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$here/e2elib.sh"
cd "$tmp"
count() { grep -c -- "$1" "$2"; } # lines of file $2 holding $1

# 1. no MPI for help and usage errors: a component that does not exist makes MPI_Init fail
nompi() { OMPI_MCA_pml=no_such_component "$@"; }
nompi "$bin" --help > out 2> err; rc=$?
check "--help without MPI: exit 0, the command list" test $rc -eq 0 -a "$(count 'usage: incremf COMMAND' out)" -eq 1
check "--help names EASE" grep -q EASE out
nompi "$bin" train --help > out 2> err; rc=$?
check "train --help without MPI: exit 0, its usage" test $rc -eq 0 -a "$(count 'usage: incremf train' out)" -eq 1
check "train --help names ease as a model type" grep -q '| ease ' out
nompi "$bin" train --data st --bogus-flag --model m > out 2> err; rc=$?
check "an unknown flag without MPI: exit 2, one line naming it" \
  test $rc -eq 2 -a "$(wc -l < err)" -eq 1 -a "$(count "unknown option '--bogus-flag'" err)" -eq 1
nompi "$bin" trian --data st > out 2> err; rc=$?
check "an unknown command without MPI: exit 2" test $rc -eq 2 -a "$(count "unknown command 'trian'" err)" -eq 1
nompi "$bin" help config > out 2> err; rc=$?
check "help config without MPI: exit 0" test $rc -eq 0 -a "$(count 'model.ease_lambda' out)" -eq 1
nompi "$bin" train --set model.k=4 --help > out 2> err; rc=$?
check "--help wins over the other flags" test $rc -eq 0 -a "$(count 'usage: incremf train' out)" -eq 1
# under mpirun, without MPI in the ranks: one copy of the output, every rank's exit code the same
nompi "$mpiexec" --oversubscribe -n 2 "$bin" train --help > out 2> err; rc=$?
check "mpirun -n 2 train --help: printed once" test $rc -eq 0 -a "$(count 'usage: incremf train' out)" -eq 1
nompi "$mpiexec" -q --oversubscribe -n 2 "$bin" update --nope > out 2> err; rc=$?
check "mpirun -n 2 update --nope: exit 2, the error once" \
  test $rc -eq 2 -a "$(count "unknown option '--nope'" err)" -eq 1
# ... even when rank 0 is the slower to start: a silent rank 1 that exits 2 at once must not let
# mpirun kill rank 0 before it prints (rank 0 starts 1 s late here; src/cli/early.c)
nompi "$mpiexec" -q --oversubscribe -n 1 sh -c 'sleep 1; exec "$0" "$@"' "$bin" update --nope : \
  -n 1 "$bin" update --nope > out 2> err; rc=$?
check "mpirun -n 2 update --nope, rank 0 late: exit 2, the error once" \
  test $rc -eq 2 -a "$(count "unknown option '--nope'" err)" -eq 1
# the early flag check knows a command's flags from its usage text: every flag a command's parser
# compares against must appear there, or a valid flag would be refused before MPI starts
missing=""
for f in "$here"/../src/cli/cmd_*.c; do
  usage=$(awk '/^const char IMF_USAGE/,/;$/' "$f")
  for fl in $(grep -o '"--[a-z][a-z0-9-]*"' "$f" | tr -d '"' | sort -u); do
    grep -qE -- "$fl([^a-z0-9_-]|\$)" <<< "$usage" || missing="$missing $(basename "$f"):$fl"
  done
done
check "every flag a command parses is in its usage text${missing:+ (missing:$missing)}" test -z "$missing"

# 2. an expected refusal under mpirun: one line from incremf, the exit code kept, no MPI_Abort
run 1 synth --out r.csv --users 150 --items 80 --ratings 4000 --seed 3 --quiet || bad "synth"
run 2 prepare --input r.csv --data st --quiet || bad "prepare"
"$mpiexec" --oversubscribe -n 2 "$bin" append --input r.csv --data st --quiet > out 2> err; rc=$?
check "a batch already in the store under mpirun -n 2: exit 3" test $rc -eq 3
check "... the error line exactly once" test "$(count 'is already in the store' err)" -eq 1
check "... no MPI_Abort block" test "$(grep -ci 'MPI_ABORT' err)" -eq 0
"$mpiexec" -q --oversubscribe -n 2 "$bin" append --input r.csv --data st --quiet > out 2> err; rc=$?
check "... under mpirun -q: exit 3 and nothing but the error line" \
  test $rc -eq 3 -a "$(wc -l < err)" -eq 1 -a "$(count 'is already in the store' err)" -eq 1
"$mpiexec" -q --oversubscribe -n 2 "$bin" train --data st --model m --set model.lamda=0.1 --quiet > out 2> err; rc=$?
check "a config error under mpirun -q -n 2: exit 2, one line" test $rc -eq 2 -a "$(wc -l < err)" -eq 1
check "... suggesting the key meant" grep -q "did you mean 'model.lambda'?" err
"$mpiexec" -q --oversubscribe -n 2 "$bin" prepare --input missing.csv --data s2 --quiet > out 2> err; rc=$?
check "a missing input under mpirun -q -n 2: exit 3, one line" test $rc -eq 3 -a "$(wc -l < err)" -eq 1
# run-local.sh runs mpirun -q by default: a failed step is incremf's line and the script's own
INCREMF="$bin" MPIRUN="$mpiexec" INPUT=missing.csv DATA=s3 MODEL=m3 NP=2 bash "$here/../jobs/run-local.sh" \
  > out 2> err; rc=$?
check "run-local.sh, missing input: exit 3" test $rc -eq 3
check "... incremf's error and the script's line, no launcher block" \
  test "$(count 'cannot open' err)" -eq 1 -a "$(count 'run-local: prepare failed with exit code 3' err)" -eq 1 \
  -a "$(grep -c -- '-----' err)" -eq 0

# 3. the small items
run 2 prepare --input r.csv --data a/b/st0 --set holdout.fraction=0 --quiet; rc=$?
check "prepare --data a/b/st0 creates the missing parents" test $rc -eq 0 -a -f a/b/st0/MANIFEST
run 2 train --data a/b/st0 --model c/d/m --set model.k=4 --set model.iterations=2 \
  --set model.validation_fraction=0 > out 2> err; rc=$?
check "train --model c/d/m creates the missing parents" test $rc -eq 0 -a -f c/d/m/CURRENT
check "no validation set: no val-rmse in the sweep lines" \
  test "$(count 'sweep   2' err)" -eq 1 -a "$(grep -ci 'nan' err)" -eq 0 -a "$(count 'val-rmse' err)" -eq 0
run 1 train --data a/b/st0 --model m2 --set model.type=bias --set model.validation_fraction=0 --json > out 2> err
check "bias without a validation set: no 'validation RMSE nan'" \
  test "$(count 'bias: mu' err)" -eq 1 -a "$(grep -ci 'nan' err)" -eq 0
check "... and in --json, val_rmse null" grep -q '"val_rmse":null' out
run 2 train --data st --model mi --set model.type=ials --set model.solver=cg --set model.k=4 \
  --set model.iterations=1 > out 2> err; rc=$?
check "CG iALS: no '0 Gflop/s'" test $rc -eq 0 -a "$(count 'Gflop/s' err)" -eq 0 -a "$(count 'none formed' err)" -eq 1
run 1 status --model c/d/m --quiet > out 2> err
check "status shows the year of a version's creation" grep -qE ' 20[0-9][0-9]-[01][0-9]-[0-3][0-9]T' out

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
