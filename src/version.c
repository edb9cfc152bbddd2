/* SPDX-License-Identifier: MIT */
/*
 * version.c - evq_version(): the version this library was built as, taken
 * from the same header lines as the Makefile's VERSION and soname.
 */
#include "evq.h"

unsigned evq_version(void)
{
	return EVQ_VERSION;
}
