/*
 * bcryptprimitives.dll for Wine 8: Go 1.22 and later get random bytes
 * from ProcessPrng, which Wine 8's bcryptprimitives lacks, so every Go
 * program for Windows dies at start under it. This DLL exports
 * ProcessPrng on top of RtlGenRandom (advapi32's SystemFunction036). The
 * Wine harness builds it with mingw into each test prefix; it is never
 * committed as a binary and never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
	while (length > 0) {
		ULONG n = length > 0x10000000 ? 0x10000000 : (ULONG)length;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		length -= n;
	}
	return TRUE;
}
