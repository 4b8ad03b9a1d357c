#!/usr/bin/env bash
# e2e_faults_kill_update.sh - kill -9 at the commit steps and at seeded random times of update,
# rollback and forget: tests/e2e_faults_kill.sh (see there) for those three commands, run as a
# test of its own so that each script stays within two minutes on a loaded 2-core machine.
export IMF_FAULT_KILL_SET="update rollback forget" IMF_FAULT_SCRIPT=e2e_faults_kill_update
exec bash "$(cd "$(dirname "$0")" && pwd)/e2e_faults_kill.sh"
