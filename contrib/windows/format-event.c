/* A Wine test fixture for contrib/windows/msi-check.sh, never shipped: formats event ID 1
 * from the message table in the exe named by argv[1] with argv[2] as its insertion string,
 * as Event Viewer does with the EventMessageFile of the source lb-feedback, and prints it.
 * Exit status 1 when the exe or its message 1 cannot be loaded. */
#include <windows.h>
#include <stdio.h>

int wmain(int argc, wchar_t **argv)
{
    HMODULE exe;
    DWORD_PTR inserts[1];
    wchar_t text[1024];

    if (argc != 3)
        return 2;
    exe = LoadLibraryExW(argv[1], NULL, LOAD_LIBRARY_AS_DATAFILE);
    if (!exe)
        return 1;
    inserts[0] = (DWORD_PTR)argv[2];
    if (!FormatMessageW(FORMAT_MESSAGE_FROM_HMODULE | FORMAT_MESSAGE_ARGUMENT_ARRAY, exe, 1, 0,
                        text, sizeof(text) / sizeof(text[0]), (va_list *)inserts))
        return 1;
    wprintf(L"%ls", text);
    return 0;
}
