/*
 * Wine-only test fixture -- never ship this next to a binary on real Windows.
 *
 * Rust's std (1.78+) gets its randomness from ProcessPrng() in
 * bcryptprimitives.dll.  Real Windows 10/11 has that DLL; Wine 8 does not, so a
 * Rust .exe fails to load under Wine with status c0000135.  This DLL provides
 * just that one export, backed by RtlGenRandom (exported by advapi32 as
 * SystemFunction036), which Wine does implement.  wine-run.sh copies it next
 * to the .exe being tested.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -s -o bcryptprimitives.dll \
 *            bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

/* RtlGenRandom's real name; declared here to avoid ntsecapi.h's macro dance. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG length; feed large requests in chunks. */
    while (len > 0) {
        ULONG chunk = len > 0x7fffffffUL ? 0x7fffffffUL : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    /* The real ProcessPrng never fails; this one reports RtlGenRandom's
     * failure rather than hand back unfilled bytes. */
    return TRUE;
}
