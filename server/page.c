/* page.c - the chat page (server/page.html) built into the binary with the assembler's .incbin, so the server has
** no files to find at run time. The Makefile rebuilds this object when page.html changes.
*/
#include "server.h"

__asm__(".section .rodata\n"
        ".global srv_page_html\n"
        ".type srv_page_html, %object\n"
        "srv_page_html:\n"
        ".incbin \"server/page.html\"\n"
        ".global srv_page_end\n"
        "srv_page_end:\n"
        ".byte 0\n"
        ".previous\n");

extern const char srv_page_end[];

size_t srv_page_len(void) { return (size_t)(srv_page_end - srv_page_html); }
