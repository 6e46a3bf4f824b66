// Package testutil holds the tests' capability checks and fixture lookup.
//
// A test that needs something the machine may lack (root, /dev/fuse, a
// kernel file system, a program from a Debian package, the shared test
// vectors) asks for it here. When it is missing the test is skipped with a
// message naming what is missing and how to get it (scripts/deps.sh
// installs the packages). With GONYDUS_STRICT=1, as CI sets it, a missing
// capability fails the test instead, so CI cannot pass by skipping.
package testutil
