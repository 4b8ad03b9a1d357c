#!/usr/bin/env bash
# e2e_install.sh - the installed library is usable: `cmake --install` into a temporary prefix,
# then a small C program is built against it with pkg-config (shared and static) and with
# find_package(incremf) (incremf::incremf and incremf::incremf_static), and run. Then the
# embedding API: examples/recommend_one.c, built against the installed package with pkg-config
# (run on 1 rank) and with find_package via examples/CMakeLists.txt (run on 2 ranks), prints
# exactly what `incremf recommend` and `incremf evaluate --test` print for the same model; and
# imf_model_open of a given version (v1 after a retrain made v2 current; a version not kept is
# exit 3); and the installed libincremf.so exports exactly the functions incremf.h marks IMF_API.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
src="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "$(dirname "$bin")" && pwd)"
[ -f "$build/cmake_install.cmake" ] || { echo "skip: $build is not a CMake build directory"; exit 77; }
command -v pkg-config >/dev/null || { echo "skip: no pkg-config"; exit 77; }
# A sanitizer build (INCREMF_SANITIZE=ON): its libincremf carries -fsanitize=address,undefined in
# incremf.pc's Libs and in the exported targets, so the programs below get the sanitizer runtimes
# from the installed files alone. They also get tests/sanitizers/keep_dsos.c, as every program
# of that build does, so that LeakSanitizer's check at their exit names the Open MPI module of
# each leak MPI_Init leaves (suppressed in lsan.supp) instead of "<unknown module>".
san=0
san_src=()
if grep -q '^INCREMF_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  san=1
  san_src=("$(cd "$(dirname "$0")" && pwd)/sanitizers/keep_dsos.c" -Wl,--export-dynamic-symbol=dlclose)
fi
tmp=$(mktemp -d /tmp/imf-e2e-install.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
cd "$tmp"
prefix="$tmp/prefix"
cmake --install "$build" --prefix "$prefix" > install.log 2>&1; rc=$?
check "cmake --install into a temporary prefix" test $rc -eq 0
check "header installed" test -f "$prefix/include/incremf.h"
pc=$(find "$prefix" -name incremf.pc | head -1)
cfgfile=$(find "$prefix" -name incremfConfig.cmake | head -1)
check "incremf.pc installed" test -n "$pc"
check "incremfConfig.cmake installed" test -n "$cfgfile"
libdir=$(dirname "$(find "$prefix" -name 'libincremf.so*' | head -1)")

mkdir app
cat > app/app.c <<'CEOF'
#include <incremf.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  MPI_Init(NULL, NULL);
  imf_config *cfg = NULL;
  int64_t k = 0;
  if (imf_config_create(&cfg) != IMF_OK) return 1;
  if (imf_config_set(cfg, "model.k=17") != IMF_OK) return 2;
  if (imf_config_get_int(cfg, "model.k", &k) != IMF_OK || k != 17) return 3;
  imf_status bad = imf_config_set(cfg, "model.no_such_key=1");
  imf_config_destroy(&cfg);
  printf("k=%lld bad=%s exit=%d requeue=%d\n", (long long)k, imf_status_name(bad), imf_exit_code(bad),
         imf_exit_code(IMF_ERR_REQUEUE));
  MPI_Finalize();
  return 0;
}
CEOF
cat > app/CMakeLists.txt <<'CEOF'
cmake_minimum_required(VERSION 3.18)
project(imfapp LANGUAGES C)
find_package(incremf 0.1 REQUIRED)
add_executable(app_shared app.c)
target_link_libraries(app_shared PRIVATE incremf::incremf)
if(TARGET incremf::incremf_static)
  add_executable(app_static app.c)
  target_link_libraries(app_static PRIVATE incremf::incremf_static)
endif()
CEOF
if [ $san = 1 ]; then
  cp "${san_src[0]}" app/keep_dsos.c
  cat >> app/CMakeLists.txt <<'CEOF'
foreach(t app_shared app_static)
  if(TARGET ${t})
    target_sources(${t} PRIVATE keep_dsos.c)
    target_link_options(${t} PRIVATE -Wl,--export-dynamic-symbol=dlclose)
  endif()
endforeach()
CEOF
fi
want="k=17 bad=usage error exit=2 requeue=75"
runapp() { LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@" 2>&1; }

# pkg-config: shared, then static
export PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
check "pkg-config finds incremf $(pkg-config --modversion incremf 2>/dev/null)" pkg-config --exists incremf
cc -o app_pc app/app.c "${san_src[@]}" $(pkg-config --cflags --libs incremf) > pc.log 2>&1; rc=$?
check "pkg-config: builds (shared)" test $rc -eq 0
[ $rc -eq 0 ] || cat pc.log
out=$(runapp ./app_pc)
check "pkg-config: runs against the installed libincremf.so ($out)" test "$out" = "$want"
check "pkg-config: linked to the installed library" bash -c "LD_LIBRARY_PATH='$libdir' ldd ./app_pc | grep -q '$libdir/libincremf.so'"
cc -o app_pcs app/app.c "${san_src[@]}" $(pkg-config --cflags incremf) "$libdir/libincremf.a" \
  $(pkg-config --static --libs incremf | sed 's/-lincremf//') > pcs.log 2>&1; rc=$?
check "pkg-config --static: builds against libincremf.a" test $rc -eq 0
[ $rc -eq 0 ] || cat pcs.log
out=$(./app_pcs 2>&1)
check "pkg-config --static: runs ($out)" test "$out" = "$want"

# find_package(incremf)
cmake -S app -B appbuild -DCMAKE_PREFIX_PATH="$prefix" > fp.log 2>&1 && cmake --build appbuild >> fp.log 2>&1; rc=$?
check "find_package(incremf): configures and builds" test $rc -eq 0
[ $rc -eq 0 ] || cat fp.log
out=$(runapp appbuild/app_shared)
check "find_package: incremf::incremf runs ($out)" test "$out" = "$want"
check "find_package: incremf::incremf_static built" test -x appbuild/app_static
out=$(appbuild/app_static 2>&1)
check "find_package: incremf::incremf_static runs ($out)" test "$out" = "$want"
if [ $san = 1 ]; then
  check "sanitizer build: incremf.pc asks for the sanitizer runtimes" bash -c "pkg-config --libs incremf | grep -q -- -fsanitize=address"
  check "sanitizer build: the programs run with ASan" bash -c "ldd ./app_pc | grep -q libasan"
fi
check "the shared target's interface has no PkgConfig:: targets" bash -c "! grep -q 'PkgConfig::' '$(dirname "$cfgfile")/incremfTargets.cmake'"

# ---- the embedding API (incremf.h, "using a trained model") against the installed package ----
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
"$bin" synth --out d.csv --users 200 --items 90 --ratings 5000 --quiet > synth.log 2>&1
"$bin" synth --out test.csv --users 200 --items 90 --ratings 800 --seed 7 --quiet >> synth.log 2>&1
"$bin" prepare --input d.csv --data st --quiet > prep.log 2>&1 &&
  "$bin" train --data st --model m --set model.type=als --set model.iterations=3 --quiet > train.log 2>&1; rc=$?
check "a small model to query (synth, prepare, train als)" test $rc -eq 0
cli_top=$("$bin" recommend --model m --data st --user 5 --top 5 2>/dev/null)
first=$(printf '%s\n' "$cli_top" | head -1 | cut -f2)
cli_score=$("$bin" recommend --model m --user 5 --items "$first" 2>/dev/null | cut -f3)
evj=$("$bin" evaluate --data st --model m --test test.csv --k 5 --json 2>/dev/null | grep '^{')
jget() { printf '%s' "$evj" | grep -o "\"$1\":[^,}]*" | head -1 | cut -d: -f2; }
want_eval="rmse=$(jget rmse) mae=$(jget mae) ndcg@5=$(jget ndcg@5)"
check "the CLI answers ($(printf '%s\n' "$cli_top" | wc -l) items, top '$first' $cli_score; $want_eval)" \
  test "$(printf '%s\n' "$cli_top" | wc -l)" -eq 5 -a -n "$cli_score" -a -n "$(jget ndcg@5)"
# the example's output: the ranked lines, the score of the first item, the evaluation
excheck() {
  local how="$1" out="$2"
  check "$how: top 5 equals \`incremf recommend --user 5 --top 5\`" \
    test "$(printf '%s\n' "$out" | grep -P '^[0-9]+\t')" = "$cli_top"
  check "$how: score of ($first) equals \`recommend --items\` ($cli_score)" \
    test "$(printf '%s\n' "$out" | grep '^score' | cut -f4)" = "$cli_score"
  local got_eval
  got_eval=$(printf '%s\n' "$out" | grep '^eval' | cut -f3- | tr '\t' ' ')
  check "$how: evaluate equals \`evaluate --test --k 5\` ($got_eval)" test "$got_eval" = "$want_eval"
}
cc -o ex_pc "$src/examples/recommend_one.c" "${san_src[@]}" $(pkg-config --cflags --libs incremf) > expc.log 2>&1; rc=$?
check "example via pkg-config: builds" test $rc -eq 0
[ $rc -eq 0 ] || cat expc.log
out=$(runapp ./ex_pc m st 5 5 test.csv); rc=$?
check "example via pkg-config: runs (1 rank)" test $rc -eq 0
excheck "example via pkg-config" "$out"
out=$(runapp ./ex_pc m st no-such-user 5); rc=$?
msg=$(printf '%s\n' "$out" | grep -c "unknown user 'no-such-user'")
check "example: an unknown user is exit 3 (IMF_ERR_NOTFOUND; got $rc) with a message naming it" test $rc -eq 3 -a "$msg" -ge 1
cp -r "$src/examples" ex
if [ $san = 1 ]; then
  cp "${san_src[0]}" ex/keep_dsos.c
  printf '%s\n' 'target_sources(recommend_one PRIVATE keep_dsos.c)' \
    'target_link_options(recommend_one PRIVATE -Wl,--export-dynamic-symbol=dlclose)' >> ex/CMakeLists.txt
fi
cmake -S ex -B exbuild -DCMAKE_PREFIX_PATH="$prefix" > exfp.log 2>&1 && cmake --build exbuild >> exfp.log 2>&1; rc=$?
check "example via find_package(incremf): configures and builds" test $rc -eq 0
[ $rc -eq 0 ] || cat exfp.log
out=$(runapp "$mpiexec" --oversubscribe -n 2 exbuild/recommend_one m st 5 5 test.csv); rc=$?
check "example via find_package: runs (2 ranks)" test $rc -eq 0
excheck "example via find_package (2 ranks)" "$out"

# imf_model_open's version argument: a second training makes v2 current; version 1 still answers
# what the CLI answered while it was current, version 0 is CURRENT, a version not kept is exit 3
"$bin" train --data st --model m --set model.type=als --set model.iterations=5 --quiet > train2.log 2>&1
cli_top2=$("$bin" recommend --model m --data st --user 5 --top 5 2>/dev/null)
check "the retrain (5 sweeps, was 3) changed the top 5 scores (so the versions can be told apart)" \
  test "$cli_top" != "$cli_top2"
cat > ver.c <<'CEOF'
#include <incremf.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) { /* ver MODEL STORE VERSION USER */
  MPI_Init(&argc, &argv);
  imf_model_handle *h = NULL;
  imf_model_info info;
  imf_recommendation r[5];
  int n = 0;
  imf_status st = imf_model_open(MPI_COMM_WORLD, NULL, argv[1], argv[2], atoll(argv[3]), &h);
  if (st == IMF_OK) st = imf_model_describe(h, &info);
  if (st == IMF_OK) st = imf_model_recommend(h, argv[4], 5, 0, r, &n, NULL);
  if (st == IMF_OK) printf("version %lld\n", (long long)info.version);
  for (int j = 0; st == IMF_OK && j < n; j++) printf("%d\t%s\t%.6g\n", j + 1, r[j].item, r[j].score);
  if (st != IMF_OK) printf("error %s: %s\n", imf_status_name(st), imf_last_error());
  imf_model_close(&h);
  MPI_Finalize();
  return imf_exit_code(st);
}
CEOF
cc -o ver ver.c "${san_src[@]}" $(pkg-config --cflags --libs incremf) > ver.log 2>&1 || cat ver.log
out=$(runapp ./ver m st 1 5)
check "version 1 after a retrain: its own top 5 (what recommend printed while it was current)" \
  test "$out" = "$(printf 'version 1\n%s' "$cli_top")"
out=$(runapp ./ver m st 0 5)
check "version 0: CURRENT (v2), as recommend prints now" test "$out" = "$(printf 'version 2\n%s' "$cli_top2")"
out=$(runapp ./ver m st 9 5); rc=$?
check "a version not kept: exit 3 naming it ($(printf '%s' "$out" | cut -c1-70))" \
  test $rc -eq 3 -a "$(printf '%s' "$out" | grep -c 'has no version 9')" -eq 1

# only the public API is exported: the dynamic symbols of the installed libincremf.so are the
# functions incremf.h declares IMF_API (hidden visibility for everything else)
so=$(find "$prefix" -name 'libincremf.so' | head -1)
nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | sort > exported.txt
grep -o '^IMF_API [^(]*(' "$prefix/include/incremf.h" | sed 's/($//; s/.*[ *]//' | sort > declared.txt
check "libincremf.so exports exactly the $(wc -l < declared.txt) IMF_API functions ($(wc -l < exported.txt) exported)" \
  cmp -s exported.txt declared.txt
cmp -s exported.txt declared.txt || diff declared.txt exported.txt | head -20
check "no other imf_ symbol is exported" bash -c "! nm -D --defined-only '$so' | awk '{print \$3}' | grep '^imf_' | grep -vxFf declared.txt"
echo "e2e_install: $pass passed, $fail failed"
[ $fail -eq 0 ]
