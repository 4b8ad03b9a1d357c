/* keep_dsos.c - linked into the executables of a sanitizer build (INCREMF_SANITIZE=ON) only.
 *
 * 1. Open MPI and PMIx load their components (mca_*.so, pmix_mca_*.so) with dlopen() and
 * dlclose() them in MPI_Finalize, before LeakSanitizer looks for leaks at exit. The stack frames
 * of what those components allocated then point into unmapped code: they print as "<unknown
 * module>", no suppression can match them and nobody can tell whose allocation it was. This
 * dlclose(), exported from the executable (-Wl,--export-dynamic-symbol=dlclose), interposes the C
 * library's for every shared library in the process, so modules stay mapped until exit and every
 * leak report names the library it came from (and what a component's globals still point to is
 * no longer reported at all). POSIX allows it: dlclose() "does not create any requirement upon
 * the implementation, such as removal of the code or symbols referenced".
 *
 * 2. With gcc, -fsanitize=address,undefined links two runtimes, libasan and libubsan, each with
 * its own copy of the sanitizer common code. libubsan's call that applies log_path resolves to
 * libasan's exported __sanitizer_set_report_path, so UBSan reports went to stderr whatever
 * ASAN_OPTIONS or UBSAN_OPTIONS said (tests/sanitizers/check-reports.sh, which collects reports
 * from log_path files, would not have seen one from a process whose stderr a test discards).
 * When IMF_UBSAN_LOG_PATH is set (check-reports.sh sets it to the same prefix as ASan's
 * log_path), the constructor below calls libubsan's own setter, found through its handle.
 *
 * 3. MPI_Init and MPI_Finalize keep some of what Open MPI and hwloc allocate for the process's
 * lifetime (op tables, argv lists, hwloc bitmaps, a locality string asprintf()ed by
 * orte_ess_base_proc_binding). Through MPI's profiling interface the wrappers below call PMPI_*
 * with LSan disabled on the calling thread, so those blocks are never reported. This replaces
 * suppressions by function name: matching one needs the stack symbolized in-process at every
 * exit (gcc's libasan then parses its own DWARF: ~0.25 s per process, measured 2026-12-07 on a
 * 2-rank prepare, 0.72 s against 0.50 s), and the asprintf one had no other name to match
 * (glibc has no frame pointers: the stack stops at __vasprintf_internal). The tests run with
 * symbolize=0, lsan.supp names modules only, and check-reports.sh symbolizes what it prints. */
#include <dlfcn.h>
#include <mpi.h>
#include <sanitizer/lsan_interface.h>
#include <stdlib.h>

int MPI_Init(int *argc, char ***argv) {
  __lsan_disable();
  int rc = PMPI_Init(argc, argv);
  __lsan_enable();
  return rc;
}

int MPI_Init_thread(int *argc, char ***argv, int required, int *provided) {
  __lsan_disable();
  int rc = PMPI_Init_thread(argc, argv, required, provided);
  __lsan_enable();
  return rc;
}

int MPI_Finalize(void) {
  __lsan_disable();
  int rc = PMPI_Finalize();
  __lsan_enable();
  return rc;
}

int dlclose(void *handle) {
  (void)handle;
  return 0;
}

__attribute__((constructor)) static void imf_ubsan_log_path(void) {
  const char *path = getenv("IMF_UBSAN_LOG_PATH");
  if (!path || !*path) return;
  void *ubsan = dlopen("libubsan.so.1", RTLD_LAZY | RTLD_NOLOAD); /* NULL with clang: one runtime */
  if (!ubsan) return;
  void (*set_path)(const char *) = (void (*)(const char *))dlsym(ubsan, "__sanitizer_set_report_path");
  if (set_path) set_path(path);
}
