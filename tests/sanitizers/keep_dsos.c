/* keep_dsos.c - linked into the executables of a sanitizer build (INCREMF_SANITIZE=ON) only.
 *
 * Open MPI and PMIx load their components (mca_*.so, pmix_mca_*.so) with dlopen() and dlclose()
 * them in MPI_Finalize, before LeakSanitizer looks for leaks at exit. The stack frames of what
 * those components allocated then point into unmapped code: they print as "<unknown module>",
 * no suppression can match them and nobody can tell whose allocation it was. This dlclose(),
 * exported from the executable (-Wl,--export-dynamic-symbol=dlclose), interposes the C library's
 * for every shared library in the process, so modules stay mapped until exit and every leak
 * report names the library it came from (and what a component's globals still point to is no
 * longer reported at all). POSIX allows it: dlclose() "does not create any requirement upon the
 * implementation, such as removal of the code or symbols referenced". */
#include <dlfcn.h>

int dlclose(void *handle) {
  (void)handle;
  return 0;
}
