/* test_tokenizer.c - vocabularies (GGUF, llama2.c tokenizer.bin, SentencePiece tokenizer.model, arrays) and the
** SentencePiece-style BPE. Llama 2 is checked against SentencePiece's own ids in ../shared/data/tokenizer/llama2.jsonl
** (every line, with and without BOS, and the decode).
**
** Expected ids come from llama.cpp itself, never from this code: the table below was produced by node-llama-cpp
** 3.22.1 (prebuilt llama.cpp release v0.5.0, commit de3ff81 - the build the goldens came from) on
** ../shared/data/stories260K/stories260K.gguf with this throwaway script (run from /tmp, not kept in the repo):
**
**     import {getLlama} from "node-llama-cpp";
**     const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
**     const model = await llama.loadModel({modelPath: "stories260K.gguf"});
**     for (const t of texts)  // ids: model.tokenize(t, false); ids_special: model.tokenize(t, true)
**         console.log(JSON.stringify({text: t, ids: Array.from(model.tokenize(t, false)),
**                                     ids_special: Array.from(model.tokenize(t, true))}));
**
** (model.tokenize calls common_tokenize(vocab, text, add_special = false, parse_special).) Rows marked lc_oracle hold
** invalid UTF-8, which a JavaScript string cannot carry; they come from the same llama.cpp build through
** `.oracle/lc_oracle tokenize -m stories260K.gguf -p BYTES --no-bos [--special]` (tests/oracle/lc_oracle.c, which
** calls llama_tokenize). The manifest of the stories260K goldens gives "Once upon a time" with BOS = 1 403 407 261 378.
*/
#include "harness.h"
#include "llamac.h"

#include "../src/gguf/gguf.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/tokenizer/vocab_impl.h"
#include "tok_jsonl.h"

#include <time.h>
#include <unistd.h>

typedef struct tok_case {
    const char *text; /* repeated `repeat` times */
    size_t len;
    int repeat;
    int n;
    const int32_t *ids; /* without BOS, LC_TOK_PARSE_SPECIAL off */
    int n_special;      /* -1: same as ids */
    const int32_t *ids_special; /* with LC_TOK_PARSE_SPECIAL */
} tok_case;

static const tok_case stories_cases[] = {
    {"Once upon a time", 16, 1,
        4, (const int32_t[]){403, 407, 261, 378},
        -1, NULL},
    {"Hello world", 11, 1,
        6, (const int32_t[]){346, 306, 414, 263, 304, 341},
        -1, NULL},
    {" ", 1, 1,
        2, (const int32_t[]){410, 410},
        -1, NULL},
    {"  ", 2, 1,
        3, (const int32_t[]){410, 410, 410},
        -1, NULL},
    {"\n", 1, 1,
        2, (const int32_t[]){410, 13},
        -1, NULL},
    {"\n\n", 2, 1,
        3, (const int32_t[]){410, 13, 13},
        -1, NULL},
    {" Hello", 6, 1,
        4, (const int32_t[]){410, 346, 306, 414},
        -1, NULL},
    {"Hello  world", 12, 1,
        7, (const int32_t[]){346, 306, 414, 410, 263, 304, 341},
        -1, NULL},
    {"   leading spaces", 17, 1,
        12, (const int32_t[]){410, 410, 410, 278, 411, 380, 299, 262, 427, 412, 331, 419},
        -1, NULL},
    {"trailing spaces   ", 18, 1,
        13, (const int32_t[]){259, 420, 412, 290, 299, 262, 427, 412, 331, 419, 410, 410, 410},
        -1, NULL},
    {"tab\there", 8, 1,
        6, (const int32_t[]){259, 412, 430, 12, 260, 276},
        -1, NULL},
    {"line1\nline2\r\nline3", 18, 1,
        15, (const int32_t[]){278, 271, 411, 475, 13, 421, 271, 411, 479, 16, 13, 421, 271, 411, 472},
        -1, NULL},
    {"12345 67.89", 11, 1,
        12, (const int32_t[]){410, 475, 479, 472, 484, 480, 410, 490, 491, 426, 487, 483},
        -1, NULL},
    {"The year 2024!", 14, 1,
        10, (const int32_t[]){291, 348, 411, 295, 410, 479, 477, 479, 484, 443},
        -1, NULL},
    {"Hello, world! What's up?", 24, 1,
        16, (const int32_t[]){346, 306, 414, 432, 263, 304, 341, 443, 410, 448, 415, 294, 439, 419, 350, 450},
        -1, NULL},
    {"Caf\xc3\xa9 na\xc3\xafve", 12, 1,
        10, (const int32_t[]){410, 457, 412, 431, 485, 297, 412, 198, 178, 360},
        -1, NULL},
    {"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 9, 1,
        10, (const int32_t[]){410, 233, 154, 168, 233, 159, 175, 235, 173, 161},
        -1, NULL},
    {"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80", 19, 1,
        20, (const int32_t[]){410, 211, 162, 212, 131, 211, 187, 211, 181, 211, 184, 212, 133, 410, 211, 191, 211,
            187, 212, 131},
        -1, NULL},
    {"\xf0\x9f\x98\x80 emoji \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", 19, 1,
        19, (const int32_t[]){410, 243, 162, 155, 131, 344, 423, 414, 449, 417, 410, 243, 162, 148, 144, 243, 162,
            146, 192},
        -1, NULL},
    {"\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7", 18, 1,
        19, (const int32_t[]){410, 243, 162, 148, 171, 229, 131, 144, 243, 162, 148, 172, 229, 131, 144, 243, 162,
            148, 170},
        -1, NULL},
    {"\xce\xa9\xce\xbc\xce\xad\xce\xb3\xce\xb1 \xce\xb1\xce\xbb\xcf\x86\xce\xb1", 19, 1,
        20, (const int32_t[]){410, 209, 172, 209, 191, 209, 176, 209, 182, 209, 180, 410, 209, 180, 209, 190, 210,
            137, 209, 180},
        -1, NULL},
    {"<s>", 3, 1,
        4, (const int32_t[]){410, 504, 419, 505},
        1, (const int32_t[]){1}},
    {"</s>", 4, 1,
        5, (const int32_t[]){410, 504, 492, 419, 505},
        1, (const int32_t[]){2}},
    {"<unk>", 5, 1,
        5, (const int32_t[]){410, 504, 379, 433, 505},
        1, (const int32_t[]){0}},
    {"Hello <s> world </s>", 20, 1,
        15, (const int32_t[]){346, 306, 414, 410, 504, 419, 505, 263, 304, 341, 410, 504, 492, 419, 505},
        11, (const int32_t[]){346, 306, 414, 410, 1, 410, 263, 304, 341, 410, 2}},
    {"<s>Once</s>", 11, 1,
        11, (const int32_t[]){410, 504, 419, 505, 441, 416, 331, 504, 492, 419, 505},
        3, (const int32_t[]){1, 403, 2}},
    {" <s> ", 5, 1,
        6, (const int32_t[]){410, 410, 504, 419, 505, 410},
        5, (const int32_t[]){410, 410, 1, 410, 410}},
    {"Lily and Ben went to the park. They saw a big dog. The dog was happy!", 69, 1,
        25, (const int32_t[]){317, 269, 368, 302, 263, 377, 267, 265, 282, 295, 433, 426, 342, 394, 261, 370, 400,
            428, 426, 291, 400, 428, 286, 393, 443},
        -1, NULL},
    {"int main() { return 0; }", 24, 1,
        20, (const int32_t[]){322, 413, 284, 412, 271, 489, 488, 410, 126, 410, 276, 413, 425, 420, 416, 410, 477,
            474, 410, 128},
        -1, NULL},
    {"\"quoted\" 'single' (paren) [bracket]", 35, 1,
        27, (const int32_t[]){313, 456, 425, 309, 266, 436, 410, 439, 419, 299, 305, 439, 410, 489, 427, 412, 276,
            416, 488, 410, 508, 430, 420, 412, 340, 316, 509},
        -1, NULL},
    {"a", 1, 1,
        1, (const int32_t[]){261},
        -1, NULL},
    {"ab", 2, 1,
        2, (const int32_t[]){261, 430},
        -1, NULL},
    {"zzzzzzzzzzzz", 12, 1,
        13, (const int32_t[]){410, 451, 451, 451, 451, 451, 451, 451, 451, 451, 451, 451, 451},
        -1, NULL},
    {"x\x00y", 3, 1,
        4, (const int32_t[]){410, 444, 3, 422},
        -1, NULL},
    {"~`@#$%^&*_+=|\\/<>", 17, 1,
        18, (const int32_t[]){410, 510, 495, 67, 38, 494, 501, 97, 499, 497, 98, 496, 64, 506, 500, 492, 504, 505},
        -1, NULL},
    {"<s><s>", 6, 1,
        7, (const int32_t[]){410, 504, 419, 505, 504, 419, 505},
        2, (const int32_t[]){1, 1}},
    {"</s>Hello", 9, 1,
        9, (const int32_t[]){410, 504, 492, 419, 505, 440, 411, 306, 414},
        4, (const int32_t[]){2, 346, 306, 414}},
    {"<unk>x<s>", 9, 1,
        9, (const int32_t[]){410, 504, 379, 433, 505, 444, 504, 419, 505},
        4, (const int32_t[]){0, 410, 444, 1}},
    {"a<s>b", 5, 1,
        5, (const int32_t[]){261, 504, 419, 505, 430},
        3, (const int32_t[]){261, 1, 268}},
    {"<s> </s>", 8, 1,
        9, (const int32_t[]){410, 504, 419, 505, 410, 504, 492, 419, 505},
        4, (const int32_t[]){1, 410, 410, 2}},
    {"<<s>>", 5, 1,
        6, (const int32_t[]){410, 504, 504, 419, 505, 505},
        5, (const int32_t[]){410, 504, 1, 410, 505}},
    {"<0x41>", 6, 1,
        7, (const int32_t[]){410, 504, 477, 444, 484, 475, 505},
        -1, NULL},
    {"Hello\n<s>\n", 10, 1,
        8, (const int32_t[]){346, 306, 414, 13, 504, 419, 505, 13},
        7, (const int32_t[]){346, 306, 414, 13, 1, 410, 13}},
    {"   ", 3, 1,
        4, (const int32_t[]){410, 410, 410, 410},
        -1, NULL},
    {"\t\n \r", 4, 1,
        5, (const int32_t[]){410, 12, 13, 410, 16},
        -1, NULL},
    {"\xc3\x80\xc3\x89\xc3\x8e\xc3\x95\xc3\x9c \xc3\xa0\xc3\xa9\xc3\xae\xc3\xb5\xc3\xbc \xc3\xb1 "
        "\xc3\xa7 \xc3\x9f", 30, 1,
        29, (const int32_t[]){410, 198, 131, 198, 140, 198, 145, 198, 152, 198, 159, 410, 198, 163, 485, 198, 177,
            198, 184, 198, 191, 410, 493, 410, 198, 170, 410, 198, 162},
        -1, NULL},
    {"\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97\xe7\xac\xa6\xe6\xb5\x8b\xe8\xaf\x95\xef\xbc\x8c\xe6\xa0"
        "\x87\xe7\x82\xb9\xe3\x80\x82", 30, 1,
        31, (const int32_t[]){410, 231, 187, 176, 233, 153, 138, 232, 176, 154, 234, 175, 169, 233, 184, 142, 235,
            178, 152, 242, 191, 143, 233, 163, 138, 234, 133, 188, 230, 131, 133},
        -1, NULL},
    {"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4", 9, 1,
        10, (const int32_t[]){410, 240, 152, 159, 237, 184, 176, 239, 153, 183},
        -1, NULL},
    {"\xd7\xa2\xd7\x91\xd7\xa8\xd7\x99\xd7\xaa", 10, 1,
        11, (const int32_t[]){410, 218, 165, 218, 148, 218, 171, 218, 156, 218, 173},
        -1, NULL},
    {"\xe0\xa4\xb9\xe0\xa4\xbf\xe0\xa4\xa8\xe0\xa5\x8d\xe0\xa4\xa6\xe0\xa5\x80", 18, 1,
        19, (const int32_t[]){410, 227, 167, 188, 227, 167, 194, 227, 167, 171, 227, 168, 144, 227, 167, 169, 227,
            168, 131},
        -1, NULL},
    {"\xcc\x81""e\xcc\x81", 5, 1,
        6, (const int32_t[]){410, 207, 132, 411, 207, 132},
        -1, NULL},
    {"\xf0\x9f\x87\xba\xf0\x9f\x87\xb8\xf0\x9f\x87\xab\xf0\x9f\x87\xb7 flags", 22, 1,
        22, (const int32_t[]){410, 243, 162, 138, 189, 243, 162, 138, 187, 243, 162, 138, 174, 243, 162, 138, 186,
            272, 421, 412, 428, 419},
        -1, NULL},
    {"a", 1, 300,
        300, (const int32_t[]){261, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412,
            412, 412, 412, 412, 412, 412, 412, 412, 412, 412, 412},
        -1, NULL},
    {"ab", 2, 200,
        400, (const int32_t[]){261, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412,
            430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430,
            412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412,
            430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430,
            412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412,
            430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430,
            412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412,
            430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430,
            412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412,
            430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430,
            412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412,
            430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430,
            412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412,
            430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430,
            412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412,
            430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430,
            412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412,
            430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430,
            412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412,
            430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430,
            412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412,
            430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430,
            412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412, 430, 412,
            430, 412, 430, 412, 430, 412, 430, 412, 430},
        -1, NULL},
    {"Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshin"
        "e. One day, she saw a big, red ball in the park. She ran to it and kicked it very hard! The ba"
        "ll flew over the fence and into Mr. Brown's garden. \"Oh no!\" said Lily. She was scared, but "
        "she knocked on his door anyway.\n\nMr. Brown smiled. \"Don't worry, little one. Here is your b"
        "all.\" Lily said thank you and went home happy. The end.\n", 427, 1,
        189, (const int32_t[]){403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401,
            396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 262, 379, 419, 415, 271, 411, 426,
            385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 322, 265, 282, 295, 433,
            426, 338, 352, 303, 267, 312, 269, 409, 417, 340, 266, 312, 399, 270, 295, 418, 443,
            291, 268, 388, 272, 305, 424, 334, 330, 265, 272, 302, 331, 269, 322, 413, 414, 392,
            420, 426, 368, 420, 327, 416, 439, 419, 298, 295, 418, 302, 426, 313, 441, 415, 297,
            414, 443, 436, 336, 317, 426, 338, 286, 262, 429, 295, 266, 432, 398, 358, 409, 416,
            414, 340, 266, 353, 345, 400, 304, 261, 416, 422, 424, 283, 426, 13, 13, 446, 420,
            426, 368, 420, 327, 416, 262, 423, 290, 266, 426, 313, 455, 289, 439, 413, 263, 304,
            420, 422, 432, 376, 353, 411, 426, 346, 276, 410, 293, 364, 420, 268, 388, 426, 436,
            317, 336, 308, 303, 433, 364, 269, 263, 377, 270, 287, 411, 393, 426, 291, 344, 264,
            426, 13},
        -1, NULL},
    {"Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshin"
        "e. One day, she saw a big, red ball in the park. She ran to it and kicked it very hard! The ba"
        "ll flew over the fence and into Mr. Brown's garden. \"Oh no!\" said Lily. She was scared, but "
        "she knocked on his door anyway.\n\nMr. Brown smiled. \"Don't worry, little one. Here is your b"
        "all.\" Lily said thank you and went home happy. The end.\n", 427, 8,
        1526, (const int32_t[]){403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401,
            396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 262, 379, 419, 415, 271, 411, 426,
            385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 322, 265, 282, 295, 433,
            426, 338, 352, 303, 267, 312, 269, 409, 417, 340, 266, 312, 399, 270, 295, 418, 443,
            291, 268, 388, 272, 305, 424, 334, 330, 265, 272, 302, 331, 269, 322, 413, 414, 392,
            420, 426, 368, 420, 327, 416, 439, 419, 298, 295, 418, 302, 426, 313, 441, 415, 297,
            414, 443, 436, 336, 317, 426, 338, 286, 262, 429, 295, 266, 432, 398, 358, 409, 416,
            414, 340, 266, 353, 345, 400, 304, 261, 416, 422, 424, 283, 426, 13, 13, 446, 420,
            426, 368, 420, 327, 416, 262, 423, 290, 266, 426, 313, 455, 289, 439, 413, 263, 304,
            420, 422, 432, 376, 353, 411, 426, 346, 276, 410, 293, 364, 420, 268, 388, 426, 436,
            317, 336, 308, 303, 433, 364, 269, 263, 377, 270, 287, 411, 393, 426, 291, 344, 264,
            426, 13, 441, 416, 331, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395,
            317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 262, 379, 419,
            415, 271, 411, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 322,
            265, 282, 295, 433, 426, 338, 352, 303, 267, 312, 269, 409, 417, 340, 266, 312, 399,
            270, 295, 418, 443, 291, 268, 388, 272, 305, 424, 334, 330, 265, 272, 302, 331, 269,
            322, 413, 414, 392, 420, 426, 368, 420, 327, 416, 439, 419, 298, 295, 418, 302, 426,
            313, 441, 415, 297, 414, 443, 436, 336, 317, 426, 338, 286, 262, 429, 295, 266, 432,
            398, 358, 409, 416, 414, 340, 266, 353, 345, 400, 304, 261, 416, 422, 424, 283, 426,
            13, 13, 446, 420, 426, 368, 420, 327, 416, 262, 423, 290, 266, 426, 313, 455, 289,
            439, 413, 263, 304, 420, 422, 432, 376, 353, 411, 426, 346, 276, 410, 293, 364, 420,
            268, 388, 426, 436, 317, 336, 308, 303, 433, 364, 269, 263, 377, 270, 287, 411, 393,
            426, 291, 344, 264, 426, 13, 441, 416, 331, 407, 261, 378, 432, 383, 286, 261, 376,
            298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322,
            265, 262, 379, 419, 415, 271, 411, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352,
            266, 268, 388, 322, 265, 282, 295, 433, 426, 338, 352, 303, 267, 312, 269, 409, 417,
            340, 266, 312, 399, 270, 295, 418, 443, 291, 268, 388, 272, 305, 424, 334, 330, 265,
            272, 302, 331, 269, 322, 413, 414, 392, 420, 426, 368, 420, 327, 416, 439, 419, 298,
            295, 418, 302, 426, 313, 441, 415, 297, 414, 443, 436, 336, 317, 426, 338, 286, 262,
            429, 295, 266, 432, 398, 358, 409, 416, 414, 340, 266, 353, 345, 400, 304, 261, 416,
            422, 424, 283, 426, 13, 13, 446, 420, 426, 368, 420, 327, 416, 262, 423, 290, 266,
            426, 313, 455, 289, 439, 413, 263, 304, 420, 422, 432, 376, 353, 411, 426, 346, 276,
            410, 293, 364, 420, 268, 388, 426, 436, 317, 336, 308, 303, 433, 364, 269, 263, 377,
            270, 287, 411, 393, 426, 291, 344, 264, 426, 13, 441, 416, 331, 407, 261, 378, 432,
            383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408,
            419, 292, 411, 322, 265, 262, 379, 419, 415, 271, 411, 426, 385, 328, 432, 358, 394,
            261, 370, 432, 352, 266, 268, 388, 322, 265, 282, 295, 433, 426, 338, 352, 303, 267,
            312, 269, 409, 417, 340, 266, 312, 399, 270, 295, 418, 443, 291, 268, 388, 272, 305,
            424, 334, 330, 265, 272, 302, 331, 269, 322, 413, 414, 392, 420, 426, 368, 420, 327,
            416, 439, 419, 298, 295, 418, 302, 426, 313, 441, 415, 297, 414, 443, 436, 336, 317,
            426, 338, 286, 262, 429, 295, 266, 432, 398, 358, 409, 416, 414, 340, 266, 353, 345,
            400, 304, 261, 416, 422, 424, 283, 426, 13, 13, 446, 420, 426, 368, 420, 327, 416,
            262, 423, 290, 266, 426, 313, 455, 289, 439, 413, 263, 304, 420, 422, 432, 376, 353,
            411, 426, 346, 276, 410, 293, 364, 420, 268, 388, 426, 436, 317, 336, 308, 303, 433,
            364, 269, 263, 377, 270, 287, 411, 393, 426, 291, 344, 264, 426, 13, 441, 416, 331,
            407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396,
            267, 337, 410, 408, 419, 292, 411, 322, 265, 262, 379, 419, 415, 271, 411, 426, 385,
            328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 322, 265, 282, 295, 433, 426,
            338, 352, 303, 267, 312, 269, 409, 417, 340, 266, 312, 399, 270, 295, 418, 443, 291,
            268, 388, 272, 305, 424, 334, 330, 265, 272, 302, 331, 269, 322, 413, 414, 392, 420,
            426, 368, 420, 327, 416, 439, 419, 298, 295, 418, 302, 426, 313, 441, 415, 297, 414,
            443, 436, 336, 317, 426, 338, 286, 262, 429, 295, 266, 432, 398, 358, 409, 416, 414,
            340, 266, 353, 345, 400, 304, 261, 416, 422, 424, 283, 426, 13, 13, 446, 420, 426,
            368, 420, 327, 416, 262, 423, 290, 266, 426, 313, 455, 289, 439, 413, 263, 304, 420,
            422, 432, 376, 353, 411, 426, 346, 276, 410, 293, 364, 420, 268, 388, 426, 436, 317,
            336, 308, 303, 433, 364, 269, 263, 377, 270, 287, 411, 393, 426, 291, 344, 264, 426,
            13, 441, 416, 331, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317,
            426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 262, 379, 419, 415,
            271, 411, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 322, 265,
            282, 295, 433, 426, 338, 352, 303, 267, 312, 269, 409, 417, 340, 266, 312, 399, 270,
            295, 418, 443, 291, 268, 388, 272, 305, 424, 334, 330, 265, 272, 302, 331, 269, 322,
            413, 414, 392, 420, 426, 368, 420, 327, 416, 439, 419, 298, 295, 418, 302, 426, 313,
            441, 415, 297, 414, 443, 436, 336, 317, 426, 338, 286, 262, 429, 295, 266, 432, 398,
            358, 409, 416, 414, 340, 266, 353, 345, 400, 304, 261, 416, 422, 424, 283, 426, 13,
            13, 446, 420, 426, 368, 420, 327, 416, 262, 423, 290, 266, 426, 313, 455, 289, 439,
            413, 263, 304, 420, 422, 432, 376, 353, 411, 426, 346, 276, 410, 293, 364, 420, 268,
            388, 426, 436, 317, 336, 308, 303, 433, 364, 269, 263, 377, 270, 287, 411, 393, 426,
            291, 344, 264, 426, 13, 441, 416, 331, 407, 261, 378, 432, 383, 286, 261, 376, 298,
            315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265,
            262, 379, 419, 415, 271, 411, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266,
            268, 388, 322, 265, 282, 295, 433, 426, 338, 352, 303, 267, 312, 269, 409, 417, 340,
            266, 312, 399, 270, 295, 418, 443, 291, 268, 388, 272, 305, 424, 334, 330, 265, 272,
            302, 331, 269, 322, 413, 414, 392, 420, 426, 368, 420, 327, 416, 439, 419, 298, 295,
            418, 302, 426, 313, 441, 415, 297, 414, 443, 436, 336, 317, 426, 338, 286, 262, 429,
            295, 266, 432, 398, 358, 409, 416, 414, 340, 266, 353, 345, 400, 304, 261, 416, 422,
            424, 283, 426, 13, 13, 446, 420, 426, 368, 420, 327, 416, 262, 423, 290, 266, 426,
            313, 455, 289, 439, 413, 263, 304, 420, 422, 432, 376, 353, 411, 426, 346, 276, 410,
            293, 364, 420, 268, 388, 426, 436, 317, 336, 308, 303, 433, 364, 269, 263, 377, 270,
            287, 411, 393, 426, 291, 344, 264, 426, 13, 441, 416, 331, 407, 261, 378, 432, 383,
            286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419,
            292, 411, 322, 265, 262, 379, 419, 415, 271, 411, 426, 385, 328, 432, 358, 394, 261,
            370, 432, 352, 266, 268, 388, 322, 265, 282, 295, 433, 426, 338, 352, 303, 267, 312,
            269, 409, 417, 340, 266, 312, 399, 270, 295, 418, 443, 291, 268, 388, 272, 305, 424,
            334, 330, 265, 272, 302, 331, 269, 322, 413, 414, 392, 420, 426, 368, 420, 327, 416,
            439, 419, 298, 295, 418, 302, 426, 313, 441, 415, 297, 414, 443, 436, 336, 317, 426,
            338, 286, 262, 429, 295, 266, 432, 398, 358, 409, 416, 414, 340, 266, 353, 345, 400,
            304, 261, 416, 422, 424, 283, 426, 13, 13, 446, 420, 426, 368, 420, 327, 416, 262,
            423, 290, 266, 426, 313, 455, 289, 439, 413, 263, 304, 420, 422, 432, 376, 353, 411,
            426, 346, 276, 410, 293, 364, 420, 268, 388, 426, 436, 317, 336, 308, 303, 433, 364,
            269, 263, 377, 270, 287, 411, 393, 426, 291, 344, 264, 426, 13},
        -1, NULL},
    {"The quick brown fox jumps over the lazy dog. ", 45, 5,
        146, (const int32_t[]){291, 410, 456, 425, 417, 340, 268, 420, 327, 416, 272, 414, 444, 410, 449, 425, 423,
            427, 419, 334, 330, 265, 278, 412, 451, 422, 400, 428, 426, 291, 410, 456, 425, 417,
            340, 268, 420, 327, 416, 272, 414, 444, 410, 449, 425, 423, 427, 419, 334, 330, 265,
            278, 412, 451, 422, 400, 428, 426, 291, 410, 456, 425, 417, 340, 268, 420, 327, 416,
            272, 414, 444, 410, 449, 425, 423, 427, 419, 334, 330, 265, 278, 412, 451, 422, 400,
            428, 426, 291, 410, 456, 425, 417, 340, 268, 420, 327, 416, 272, 414, 444, 410, 449,
            425, 423, 427, 419, 334, 330, 265, 278, 412, 451, 422, 400, 428, 426, 291, 410, 456,
            425, 417, 340, 268, 420, 327, 416, 272, 414, 444, 410, 449, 425, 423, 427, 419, 334,
            330, 265, 278, 412, 451, 422, 400, 428, 426, 410},
        -1, NULL},
    {"don't won't I'm you're it's", 27, 1,
        17, (const int32_t[]){279, 289, 439, 413, 263, 289, 439, 413, 359, 439, 423, 364, 439, 276, 312, 439, 419},
        -1, NULL},
    {"1+1=2, 3*4=12, 10/5=2", 21, 1,
        22, (const int32_t[]){410, 475, 496, 475, 64, 479, 432, 410, 472, 497, 484, 64, 475, 479, 432, 410, 475,
            477, 492, 480, 64, 479},
        -1, NULL},
    {"e.g. i.e. etc...", 16, 1,
        15, (const int32_t[]){344, 426, 428, 426, 410, 417, 426, 411, 426, 410, 316, 429, 426, 426, 426},
        -1, NULL},
    {"    indented code\n\tpass", 23, 1,
        19, (const int32_t[]){410, 410, 410, 410, 410, 417, 264, 377, 266, 280, 414, 418, 411, 13, 12, 427, 412,
            419, 419},
        -1, NULL},
    {"\xff", 1, 1, /* lc_oracle */
        2, (const int32_t[]){410, 258},
        -1, NULL},
    {"a\xc3(b", 4, 1, /* lc_oracle */
        4, (const int32_t[]){261, 198, 43, 430},
        -1, NULL},
    {"\xe2\x96", 2, 1, /* lc_oracle */
        3, (const int32_t[]){410, 229, 153},
        -1, NULL},
    {"caf\xc3", 4, 1, /* lc_oracle */
        4, (const int32_t[]){280, 412, 431, 198},
        -1, NULL},
    {"\xf0\x9f\x98", 3, 1, /* lc_oracle */
        4, (const int32_t[]){410, 243, 162, 155},
        -1, NULL},
    {"x\x80\x80y", 4, 1, /* lc_oracle */
        5, (const int32_t[]){410, 444, 131, 131, 422},
        -1, NULL},
    {"\xc0\xaf", 2, 1, /* lc_oracle */
        3, (const int32_t[]){410, 195, 178},
        -1, NULL},
    {"\xed\xa0\x80", 3, 1, /* lc_oracle */
        4, (const int32_t[]){410, 240, 163, 131},
        -1, NULL},
    {"\xf4\x90\x80\x80", 4, 1, /* lc_oracle */
        5, (const int32_t[]){410, 247, 147, 131, 131},
        -1, NULL},
    {"\xfe\xfe hello \xc3\xa9\xa9", 12, 1, /* lc_oracle */
        12, (const int32_t[]){410, 257, 257, 229, 153, 132, 260, 306, 414, 410, 485, 172},
        -1, NULL},
    {"<s>\xff</s>", 8, 1, /* lc_oracle */
        9, (const int32_t[]){410, 504, 419, 505, 258, 63, 50, 118, 505},
        4, (const int32_t[]){1, 410, 258, 2}},
};

#define N_CASES (sizeof stories_cases / sizeof *stories_cases)

static char g_path[8192];

static const char *data_path(const char *rel) {
    const char *d = th_shared_dir();
    if (!d) return NULL;
    snprintf(g_path, sizeof g_path, "%s/%s", d, rel);
    return g_path;
}

/* The case's text, repeated (owned by the caller). */
static char *case_text(const tok_case *c, size_t *len) {
    *len = c->len * (size_t)c->repeat;
    char *s = malloc(*len + 1);
    for (int r = 0; r < c->repeat; r++) memcpy(s + (size_t)r * c->len, c->text, c->len);
    s[*len] = 0;
    return s;
}

/* Tokenizes into a malloc'd array (sized by a first call with cap 0, as the API allows). */
static int tokenize(const lc_vocab *v, const char *text, size_t len, unsigned flags, int32_t **ids, size_t *n) {
    size_t need = 0;
    *ids = NULL;
    int r = lc_vocab_tokenize(v, text, len, flags, NULL, 0, &need);
    if (r && r != LC_E_RANGE) return r;
    if (r == LC_E_RANGE && need == 0) return -100; /* RANGE with nothing needed: contract broken */
    *ids = malloc((need ? need : 1) * sizeof **ids);
    r = lc_vocab_tokenize(v, text, len, flags, *ids, need, n);
    if (!r && *n != need) return -101;
    return r;
}

/* Detokenizes ids one push at a time into a malloc'd NUL-terminated string. */
static char *detok_all(const lc_vocab *v, const int32_t *ids, size_t n, bool show_special, size_t *out_len) {
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    lc_detok d;
    lc_detok_init(&d, show_special);
    for (size_t i = 0; i <= n; i++) {
        char buf[256];
        int k = i < n ? lc_vocab_detok_push(v, &d, ids[i], buf, sizeof buf) : lc_detok_flush(&d, buf, sizeof buf);
        if (k < 0) { free(s); return NULL; }
        while (len + (size_t)k + 1 > cap) s = realloc(s, cap *= 2);
        memcpy(s + len, buf, (size_t)k);
        len += (size_t)k;
    }
    s[len] = 0;
    if (out_len) *out_len = len;
    return s;
}

static int first_diff(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i == na && i == nb ? -1 : (int)i;
}

static gguf_file *g_stories_f;
static lc_vocab *g_stories;

static lc_vocab *stories_vocab(void) {
    if (g_stories) return g_stories;
    const char *p = data_path("stories260K/stories260K.gguf");
    if (!p || gguf_open(p, &g_stories_f)) return NULL;
    if (lc_vocab_from_gguf(g_stories_f, &g_stories)) {
        fprintf(stderr, "lc_vocab_from_gguf: %s\n", lc_last_error());
        return NULL;
    }
    return g_stories;
}

#define NEED_STORIES(v)                                                                                            \
    lc_vocab *v = stories_vocab();                                                                                 \
    if (!v) {                                                                                                      \
        if (!th_shared_dir()) SKIP("../shared/data not found (set LLAMAC_SHARED_DATA)");                           \
        FAILF("cannot load the stories260K vocabulary: %s", lc_last_error());                                     \
    }

TEST(gguf_vocab_metadata) {
    NEED_STORIES(v);
    CHECK_EQ_INT(lc_vocab_n(v), 512);
    CHECK_EQ_INT(lc_vocab_bos(v), 1);
    CHECK_EQ_INT(lc_vocab_eos(v), 2);
    CHECK_EQ_INT(lc_vocab_unk(v), 0);
    CHECK(lc_vocab_add_bos(v));
    CHECK(!lc_vocab_add_eos(v));
    CHECK(lc_vocab_is_eog(v, 2));
    CHECK(!lc_vocab_is_eog(v, 1));
    CHECK(!strcmp(lc_vocab_piece(v, 1), "<s>"));
    CHECK_EQ_INT(lc_vocab_type(v, 1), LC_TOKTYPE_CONTROL);
    CHECK_EQ_INT(lc_vocab_type(v, 0), LC_TOKTYPE_UNKNOWN);
    CHECK(!strcmp(lc_vocab_piece(v, 3), "<0x00>"));
    CHECK_EQ_INT(lc_vocab_type(v, 3), LC_TOKTYPE_BYTE);
    CHECK_EQ_INT(lc_vocab_byte_token(v, 0x0A), 13);
    CHECK(!strcmp(lc_vocab_piece(v, 410), "\xE2\x96\x81")); /* the word-start mark alone */
    CHECK(lc_vocab_piece(v, 512) == NULL && lc_vocab_piece(v, -1) == NULL);
}

/* Every row of the llama.cpp table, with and without LC_TOK_PARSE_SPECIAL. */
TEST(spm_matches_llama_cpp) {
    NEED_STORIES(v);
    for (size_t k = 0; k < N_CASES; k++) {
        const tok_case *c = &stories_cases[k];
        size_t len, n;
        char *text = case_text(c, &len);
        for (int special = 0; special < 2; special++) {
            const int32_t *want = special && c->n_special >= 0 ? c->ids_special : c->ids;
            size_t n_want = (size_t)(special && c->n_special >= 0 ? c->n_special : c->n);
            int32_t *ids;
            int r = tokenize(v, text, len, special ? LC_TOK_PARSE_SPECIAL : 0, &ids, &n);
            int at = r ? 0 : first_diff(ids, n, want, n_want);
            if (r || at >= 0) {
                char msg[160];
                snprintf(msg, sizeof msg, "%.40s", text);
                int got = !r && (size_t)at < n ? ids[at] : -1, exp = (size_t)at < n_want ? want[at] : -1;
                free(ids);
                free(text);
                FAILF("case %zu \"%s\" (special %d): status %d, %zu ids vs %zu, first difference at %d: %d vs %d",
                      k, msg, special, r, n, n_want, at, got, exp);
            }
            free(ids);
        }
        free(text);
    }
}

TEST(bos_and_manifest_golden) {
    NEED_STORIES(v);
    /* ../shared/data/stories260K/goldens/manifest.json: "Once upon a time" -> 1 403 407 261 378 */
    int32_t ids[8];
    size_t n = 0;
    CHECK_OK(lc_vocab_tokenize(v, "Once upon a time", 16, LC_TOK_ADD_BOS, ids, 8, &n));
    const int32_t want[] = {1, 403, 407, 261, 378};
    CHECK_EQ_INT(n, 5);
    CHECK(first_diff(ids, n, want, 5) < 0);
    /* llama.cpp: encode("", add_special) is [BOS]; without, [] */
    CHECK_OK(lc_vocab_tokenize(v, "", 0, LC_TOK_ADD_BOS, ids, 8, &n));
    CHECK(n == 1 && ids[0] == 1);
    CHECK_OK(lc_vocab_tokenize(v, NULL, 0, 0, NULL, 0, &n));
    CHECK_EQ_INT(n, 0);
    /* BOS followed by text parsed as <s>: two BOS, as llama.cpp gives (it only warns) */
    CHECK_OK(lc_vocab_tokenize(v, "<s>Once", 7, LC_TOK_ADD_BOS | LC_TOK_PARSE_SPECIAL, ids, 8, &n));
    CHECK(n == 3 && ids[0] == 1 && ids[1] == 1 && ids[2] == 403);
}

TEST(buffer_contract) {
    NEED_STORIES(v);
    int32_t ids[8] = {0};
    size_t n = 99;
    /* too small: LC_E_RANGE, *n_out is what the whole text needs, the first cap ids are written */
    CHECK_EQ_INT(lc_vocab_tokenize(v, "Once upon a time", 16, LC_TOK_ADD_BOS, ids, 2, &n), LC_E_RANGE);
    CHECK_EQ_INT(n, 5);
    CHECK(ids[0] == 1 && ids[1] == 403 && ids[2] == 0);
    CHECK_EQ_INT(lc_vocab_tokenize(v, "Once upon a time", 16, 0, NULL, 0, &n), LC_E_RANGE);
    CHECK_EQ_INT(n, 4);
    CHECK_OK(lc_vocab_tokenize(v, "Once upon a time", 16, 0, ids, 4, &n));
    CHECK_EQ_INT(lc_vocab_tokenize(v, NULL, 3, 0, ids, 4, &n), LC_E_INVALID);
    CHECK_EQ_INT(lc_vocab_tokenize(v, "abc", 3, 0, NULL, 4, &n), LC_E_INVALID);
}

/* Strict UTF-8 check (RFC 3629: no overlongs, surrogates or code points above U+10FFFF). */
static bool utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!k || i + k > n) return false;
        uint32_t cp = k == 1 ? c : k == 2 ? c & 0x1F : k == 3 ? c & 0x0F : c & 0x07;
        for (size_t j = 1; j < k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += k;
    }
    return true;
}

/* detok(tokenize(text)) == text for valid UTF-8: with and without BOS, with special parsing (specials shown). */
TEST(round_trip) {
    NEED_STORIES(v);
    size_t n_checked = 0;
    for (size_t k = 0; k < N_CASES; k++) {
        const tok_case *c = &stories_cases[k];
        size_t len, n, out_len = 0;
        char *text = case_text(c, &len);
        if (!utf8_valid(text, len)) {
            free(text);
            continue;
        }
        /* With LC_TOK_PARSE_SPECIAL a text fragment after a special token gets a space prefix like the start of
        ** the text (as llama.cpp), which shows in the output: only texts without special tokens round-trip then. */
        for (unsigned flags = 0; flags < 4; flags++) {
            if ((flags & LC_TOK_PARSE_SPECIAL) && c->n_special >= 0) continue;
            int32_t *ids;
            CHECK_OK(tokenize(v, text, len, flags, &ids, &n));
            char *back = detok_all(v, ids, n, false, &out_len);
            free(ids);
            if (!back || out_len != len || memcmp(back, text, len)) {
                char a[64], b[64];
                snprintf(a, sizeof a, "%.40s", text);
                snprintf(b, sizeof b, "%.40s", back ? back : "(null)");
                free(back);
                free(text);
                FAILF("case %zu flags %u: \"%s\" came back as \"%s\" (%zu bytes vs %zu)", k, flags, a, b, out_len, len);
            }
            free(back);
            n_checked++;
        }
        free(text);
    }
    CHECK(n_checked >= 200);
}

/* tok512.bin is the llama2.c tokenizer stories260K.gguf was converted from: the vocabularies must be equal. */
TEST(llama2c_vocab_equals_gguf) {
    NEED_STORIES(g);
    const char *p = data_path("stories260K/tok512.bin");
    lc_vocab *v = NULL;
    CHECK_OK(lc_vocab_from_llama2c(p, 512, &v));
    CHECK_EQ_INT(lc_vocab_n(v), 512);
    int32_t bad = -1;
    for (int32_t id = 0; id < 512 && bad < 0; id++)
        if (lc_vocab_piece_len(v, id) != lc_vocab_piece_len(g, id) || strcmp(lc_vocab_piece(v, id), lc_vocab_piece(g, id)) ||
            lc_vocab_score(v, id) != lc_vocab_score(g, id) || lc_vocab_type(v, id) != lc_vocab_type(g, id))
            bad = id;
    if (bad >= 0) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%s", lc_vocab_piece(v, bad));
        snprintf(b, sizeof b, "%s", lc_vocab_piece(g, bad));
        double sa = lc_vocab_score(v, bad);
        int ta = lc_vocab_type(v, bad);
        lc_vocab_free(v);
        FAILF("token %d: \"%s\" score %g type %d vs GGUF \"%s\" score %g type %d", bad, a, sa, ta, b,
              (double)lc_vocab_score(g, bad), lc_vocab_type(g, bad));
    }
    CHECK(lc_vocab_bos(v) == 1 && lc_vocab_eos(v) == 2 && lc_vocab_unk(v) == 0 && lc_vocab_add_bos(v));
    int32_t ids[8];
    size_t n;
    int r = lc_vocab_tokenize(v, "Once upon a time", 16, LC_TOK_ADD_BOS, ids, 8, &n);
    lc_vocab_free(v);
    CHECK_OK(r);
    const int32_t want[] = {1, 403, 407, 261, 378};
    CHECK(n == 5 && first_diff(ids, n, want, 5) < 0);
}

static void put_u32(unsigned char *p, uint32_t x) { p[0] = (unsigned char)x, p[1] = (unsigned char)(x >> 8), p[2] = (unsigned char)(x >> 16), p[3] = (unsigned char)(x >> 24); }

/* A llama2.c tokenizer.bin in memory: max_len, then (score, len, bytes) per piece. */
static size_t l2c_build(unsigned char *buf, int32_t max_len, const char *const *pieces, const int32_t *lens, int n) {
    size_t o = 0;
    put_u32(buf, (uint32_t)max_len);
    o = 4;
    for (int i = 0; i < n; i++) {
        float sc = -(float)i;
        memcpy(buf + o, &sc, 4);
        put_u32(buf + o + 4, (uint32_t)lens[i]);
        o += 8;
        if (lens[i] > 0) memcpy(buf + o, pieces[i], (size_t)lens[i]);
        o += lens[i] > 0 ? (size_t)lens[i] : 0;
    }
    return o;
}

TEST(llama2c_malformed) {
    unsigned char buf[256];
    const char *pieces[] = {"<unk>", "<s>", "</s>", "<0x41>", " a", "b"};
    int32_t lens[] = {5, 3, 4, 6, 2, 1};
    lc_vocab *v = NULL;
    size_t n = l2c_build(buf, 6, pieces, lens, 6);
    CHECK_OK(lc_vocab_from_llama2c_buf(buf, n, "ok.bin", 6, &v));
    CHECK(!strcmp(lc_vocab_piece(v, 4), "\xE2\x96\x81" "a")); /* llama2.c's ' ' becomes U+2581 */
    CHECK_EQ_INT(lc_vocab_type(v, 3), LC_TOKTYPE_BYTE);
    CHECK_EQ_INT(lc_vocab_type(v, 5), LC_TOKTYPE_NORMAL);
    lc_vocab_free(v);
    /* the model says 7 tokens, the file holds 6: truncated */
    CHECK_EQ_INT(lc_vocab_from_llama2c_buf(buf, n, "short.bin", 7, &v), LC_E_FORMAT);
    CHECK(strstr(lc_last_error(), "short.bin") && strstr(lc_last_error(), "token 6"));
    /* the model says 5: bytes left over */
    CHECK_EQ_INT(lc_vocab_from_llama2c_buf(buf, n, "long.bin", 5, &v), LC_E_FORMAT);
    CHECK(strstr(lc_last_error(), "long.bin"));
    /* cut inside a piece's bytes */
    CHECK_EQ_INT(lc_vocab_from_llama2c_buf(buf, n - 1, "cut.bin", 6, &v), LC_E_FORMAT);
    CHECK(strstr(lc_last_error(), "cut.bin") && strstr(lc_last_error(), "offset"));
    /* a length above max_token_length, a negative length, a huge length */
    int32_t bad[] = {5, 3, 4, 7, 2, 1};
    n = l2c_build(buf, 6, (const char *const[]){"<unk>", "<s>", "</s>", "<0x41>x", " a", "b"}, bad, 6);
    CHECK_EQ_INT(lc_vocab_from_llama2c_buf(buf, n, "len.bin", 6, &v), LC_E_FORMAT);
    CHECK(strstr(lc_last_error(), "token 3"));
    n = l2c_build(buf, 6, pieces, lens, 6);
    put_u32(buf + 4 + 4, 0xFFFFFFFFu);
    CHECK_EQ_INT(lc_vocab_from_llama2c_buf(buf, n, "neg.bin", 6, &v), LC_E_FORMAT);
    n = l2c_build(buf, 0x7FFFFFFF, pieces, lens, 6);
    put_u32(buf + 4 + 4, 0x7FFFFFF0u);
    CHECK_EQ_INT(lc_vocab_from_llama2c_buf(buf, n, "huge.bin", 6, &v), LC_E_FORMAT);
    CHECK_EQ_INT(lc_vocab_from_llama2c_buf(buf, 3, "tiny.bin", 6, &v), LC_E_FORMAT);
    /* duplicate pieces */
    n = l2c_build(buf, 6, (const char *const[]){"<unk>", "<s>", "</s>", "b", " a", "b"}, (const int32_t[]){5, 3, 4, 1, 2, 1}, 6);
    CHECK_EQ_INT(lc_vocab_from_llama2c_buf(buf, n, "dup.bin", 6, &v), LC_E_FORMAT);
    CHECK(strstr(lc_last_error(), "dup.bin") && strstr(lc_last_error(), "same text"));
    CHECK_EQ_INT(lc_vocab_from_llama2c("/nonexistent/tokenizer.bin", 6, &v), LC_E_IO);
    CHECK(strstr(lc_last_error(), "/nonexistent/tokenizer.bin"));
    CHECK(v == NULL);
}

TEST(arrays_errors) {
    const char *pieces[] = {"<unk>", "<s>", "</s>", "a", "b"};
    lc_vocab_desc d = {.name = "unit", .kind = LC_VOCAB_SPM, .n = 5, .piece = pieces, .bos = 1, .eos = 2, .unk = 0,
                       .pad = -1, .eot = -1, .eom = -1};
    lc_vocab *v = NULL;
    CHECK_OK(lc_vocab_from_arrays(&d, &v));
    CHECK_EQ_INT(lc_vocab_type(v, 3), LC_TOKTYPE_NORMAL);
    CHECK(lc_vocab_is_eog(v, 2)); /* eos, and "</s>" by its text */
    lc_vocab_free(v);
    d.eos = 5;
    CHECK_EQ_INT(lc_vocab_from_arrays(&d, &v), LC_E_FORMAT);
    CHECK(strstr(lc_last_error(), "unit") && strstr(lc_last_error(), "eos"));
    d.eos = 2;
    d.n = 0;
    CHECK_EQ_INT(lc_vocab_from_arrays(&d, &v), LC_E_FORMAT);
    CHECK(v == NULL);
}

/* tokenizer.ggml.* problems: each an error naming the file and the key, never a crash. */
static int gguf_vocab_case(int which, lc_vocab **v, char *path, size_t cap) {
    static int seq;
    snprintf(path, cap, "/tmp/llamac-tok-%d-%d.gguf", (int)getpid(), seq++);
    const char *pieces[] = {"<unk>", "<s>", "</s>", "a"};
    float scores[] = {0, 0, 0, -1};
    int32_t types[] = {2, 3, 3, 1, 1}; /* one extra for the length-mismatch case */
    float ftypes[] = {2, 3, 3, 1};
    gguf_writer *w = gguf_writer_new();
    if (!w) return -1000;
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.model", which == 1 ? "gpt2" : which == 10 ? "t5" : "llama");
    if (which != 2) gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, 4);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_T_FLOAT32, scores, which == 3 ? 3 : 4);
    if (which == 4) gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_FLOAT32, ftypes, 4);
    else gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_INT32, types, which == 5 ? 5 : 4);
    if (which == 6) gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 4);
    if (which == 7) gguf_writer_set_str(w, "tokenizer.ggml.eos_token_id", "2");
    if (which == 8) gguf_writer_set_u32(w, "tokenizer.ggml.add_bos_token", 0);
    if (which == 9) gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
    int r = gguf_writer_write(w, path);
    gguf_writer_free(w);
    if (r) return -1001;
    gguf_file *f = NULL;
    if ((r = gguf_open(path, &f))) return -1002;
    r = lc_vocab_from_gguf(f, v);
    gguf_close(f);
    remove(path);
    return r;
}

TEST(gguf_malformed_tokenizer) {
    char path[128];
    lc_vocab *v = NULL;
    CHECK_OK(gguf_vocab_case(0, &v, path, sizeof path));
    CHECK(lc_vocab_n(v) == 4 && lc_vocab_add_bos(v) && lc_vocab_score(v, 3) == -1.0f);
    lc_vocab_free(v);
    static const struct { int which, status; const char *key; } cases[] = {
        {1, LC_E_FORMAT, "tokenizer.ggml.merges"},     {2, LC_E_FORMAT, "tokenizer.ggml.tokens"},
        {10, LC_E_UNSUPPORTED, "tokenizer.ggml.model"},
        {3, LC_E_FORMAT, "tokenizer.ggml.scores"},     {4, LC_E_FORMAT, "tokenizer.ggml.token_type"},
        {5, LC_E_FORMAT, "tokenizer.ggml.token_type"}, {7, LC_E_FORMAT, "tokenizer.ggml.eos_token_id"},
        {8, LC_E_FORMAT, "tokenizer.ggml.add_bos_token"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        v = NULL;
        int r = gguf_vocab_case(cases[k].which, &v, path, sizeof path);
        CHECKF(r == cases[k].status, "case %d: status %d, want %d (%s)", cases[k].which, r, cases[k].status,
               lc_last_error());
        CHECKF(strstr(lc_last_error(), path) && strstr(lc_last_error(), cases[k].key),
               "case %d: the message should name %s and %s: %s", cases[k].which, path, cases[k].key, lc_last_error());
        CHECK(v == NULL);
    }
    /* an out-of-range BOS id is ignored with a warning (llama.cpp keeps its default, 1) */
    CHECK_OK(gguf_vocab_case(6, &v, path, sizeof path));
    CHECK_EQ_INT(lc_vocab_bos(v), 1);
    lc_vocab_free(v);
    CHECK_OK(gguf_vocab_case(9, &v, path, sizeof path));
    CHECK(!lc_vocab_add_bos(v));
    lc_vocab_free(v);
}

/* A vocabulary without byte tokens: characters missing from it become <unk> (one per character); with neither, an
** error rather than a crash. */
TEST(no_byte_fallback) {
    const char *pieces[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "\xE2\x96\x81\x61"};
    lc_vocab_desc d = {.name = "nobytes", .kind = LC_VOCAB_SPM, .n = 6, .piece = pieces, .bos = 1, .eos = 2,
                       .unk = 0, .pad = -1, .eot = -1, .eom = -1, .add_space_prefix = true};
    lc_vocab *v = NULL;
    CHECK_OK(lc_vocab_from_arrays(&d, &v));
    int32_t ids[8];
    size_t n;
    CHECK_OK(lc_vocab_tokenize(v, "a\xC3\xA9" "a", 4, 0, ids, 8, &n));
    const int32_t want[] = {5, 0, 4};
    CHECK(n == 3 && first_diff(ids, n, want, 3) < 0);
    lc_vocab_free(v);
    d.unk = -1;
    CHECK_OK(lc_vocab_from_arrays(&d, &v));
    int r = lc_vocab_tokenize(v, "a\xC3\xA9", 3, 0, ids, 8, &n);
    lc_vocab_free(v);
    CHECK_EQ_INT(r, LC_E_FORMAT);
    CHECK(strstr(lc_last_error(), "nobytes"));
}

/* Long inputs stay O(n log n) and bounded: a priority queue, not a rescan per merge, and the text cut into chunks
** before word-start marks (vocab_impl.h: spm_word_split). 2 MB of text (256 kB under LLAMAC_QUICK). The ids are
** checked exactly: llama.cpp's ids of the story repeated 8 times (table above) show the pattern - the story's own
** ids, then the same "middle" ids for every further repeat - which predicts the ids of any number of repeats. */
TEST(long_input_is_fast) {
    NEED_STORIES(v);
    CHECK(v->spm_word_split);
    const tok_case *story = NULL, *once = NULL;
    for (size_t k = 0; k < N_CASES; k++) {
        if (stories_cases[k].repeat == 8) story = &stories_cases[k];
        if (stories_cases[k].repeat == 1 && stories_cases[k].len == 427) once = &stories_cases[k];
    }
    CHECK(story && once);
    size_t n1 = (size_t)once->n, n_mid = ((size_t)story->n - n1) / 7;
    CHECK(n1 + 7 * n_mid == (size_t)story->n);
    CHECK(first_diff(story->ids, n1, once->ids, n1) < 0);
    for (int r = 2; r < 8; r++) CHECK(first_diff(story->ids + n1 + (size_t)(r - 1) * n_mid, n_mid, story->ids + n1, n_mid) < 0);
    size_t target = getenv("LLAMAC_QUICK") ? (256u << 10) : (2u << 20);
    size_t reps = target / story->len + 1, len = reps * story->len;
    char *text = malloc(len + 1);
    for (size_t r = 0; r < reps; r++) memcpy(text + r * story->len, story->text, story->len);
    int32_t *ids;
    size_t n;
    double t0 = lc_time_s();
    int r = tokenize(v, text, len, 0, &ids, &n);
    double dt = lc_time_s() - t0;
    bool ok = !r && n == n1 + (reps - 1) * n_mid && first_diff(ids, n1, once->ids, n1) < 0;
    for (size_t k = 1; k < reps && ok; k++) ok = first_diff(ids + n1 + (k - 1) * n_mid, n_mid, story->ids + n1, n_mid) < 0;
    free(ids);
    /* the same without chunking (the flag cleared on purpose): identical ids */
    int32_t *ids2;
    size_t n2;
    v->spm_word_split = false;
    int r2 = tokenize(v, text, LC_MIN(len, (size_t)200000), 0, &ids2, &n2);
    v->spm_word_split = true;
    int32_t *ids3;
    size_t n3;
    int r3 = tokenize(v, text, LC_MIN(len, (size_t)200000), 0, &ids3, &n3);
    bool same = !r2 && !r3 && first_diff(ids2, n2, ids3, n3) < 0;
    free(ids2);
    free(ids3);
    /* worst case for merging: one long run of a single letter (no place to cut) */
    memset(text, 'a', len);
    t0 = lc_time_s();
    r = tokenize(v, text, len, 0, &ids, &n);
    double dt2 = lc_time_s() - t0;
    free(ids);
    free(text);
    CHECKF(ok, "the ids of %zu repeats do not follow llama.cpp's pattern", reps);
    CHECK(same);
    CHECK_OK(r);
    CHECKF(dt < 20 && dt2 < 20, "%zu bytes took %.2f s and %.2f s", len, dt, dt2);
    printf("        %zu bytes: %.3f s (story), %.3f s (one letter)\n", len, dt, dt2);
}

/* Random bytes (mostly invalid UTF-8): no crash, ids in range, and the detokenizer gives back valid UTF-8 that equals
** the input whenever the input was valid. */
TEST(random_bytes) {
    NEED_STORIES(v);
    uint64_t x = 12345;
    int rounds = getenv("LLAMAC_QUICK") ? 300 : 3000;
    for (int round = 0; round < rounds; round++) {
        char text[64];
        size_t len = (size_t)(round % 64);
        for (size_t i = 0; i < len; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            unsigned b = (unsigned)(x >> 56);
            /* every other round biased towards UTF-8 structure and the characters of "<s>" and "</s>" */
            unsigned c = b >> 1;                          /* ASCII */
            if ((b & 3) == 0) c = 0x80 | (b >> 2 & 0x3F);  /* continuation */
            else if ((b & 3) == 1) c = 0xC0 | (b >> 3);     /* lead bytes, valid or not */
            else if ((b & 3) == 2) c = (unsigned)"<s/>"[b >> 6];
            text[i] = (char)(round & 1 ? b : c);
        }
        int32_t *ids;
        size_t n, out_len;
        unsigned flags = (unsigned)round & 3;
        CHECK_OK(tokenize(v, text, len, flags, &ids, &n));
        for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < 512);
        char *back = detok_all(v, ids, n, false, &out_len);
        free(ids);
        CHECK(back);
        bool ok = utf8_valid(back, out_len);
        bool same = out_len == len && !memcmp(back, text, len);
        free(back);
        CHECK(ok);
        if (utf8_valid(text, len) && !(flags & LC_TOK_PARSE_SPECIAL)) CHECK(same);
    }
}

/* ---- Llama 2: Meta's tokenizer.model against SentencePiece's own ids (../shared/data/tokenizer/llama2.jsonl) ---- */

TEST(llama2_sentencepiece) {
    const char *mp = data_path("tokenizer/llama2.tokenizer.model");
    if (!mp) SKIP("../shared/data not found (set LLAMAC_SHARED_DATA)");
    char model_path[8192];
    snprintf(model_path, sizeof model_path, "%s", mp);
    lc_vocab *v = NULL;
    CHECK_OK(lc_vocab_from_spm_model(model_path, &v));
    CHECK_EQ_INT(lc_vocab_n(v), 32000);
    CHECK(lc_vocab_bos(v) == 1 && lc_vocab_eos(v) == 2 && lc_vocab_unk(v) == 0 && lc_vocab_add_space_prefix(v));
    CHECK_EQ_INT(lc_vocab_find(v, "\xE2\x96\x81Hello", 8), 15043); /* README: "▁Hello" is 15043 in Llama 2 */
    CHECK(v->spm_word_split); /* the long lines below are cut into chunks */
    FILE *fp = fopen(data_path("tokenizer/llama2.jsonl"), "r");
    if (!fp) { lc_vocab_free(v); FAILF("cannot open llama2.jsonl"); }
    static char line[1 << 20];
    int n_lines = 0, n_bad = 0, n_bad_bos = 0, n_bad_decode = 0;
    char first_bad[200] = "";
    while (fgets(line, sizeof line, fp)) {
        size_t len = 0, n_want = 0, n_want_bos = 0, n_dec = 0, n = 0;
        char *text = json_str(line, "text", &len), *dec = json_str(line, "decoded", &n_dec);
        int32_t *want = json_ids(line, "ids", &n_want), *want_bos = json_ids(line, "ids_bos", &n_want_bos);
        if (!text || !want || !want_bos || !dec) {
            free(text), free(want), free(want_bos), free(dec);
            fclose(fp);
            lc_vocab_free(v);
            FAILF("llama2.jsonl line %d: cannot parse", n_lines + 1);
        }
        int32_t *ids;
        n_lines++;
        if (tokenize(v, text, len, 0, &ids, &n) || first_diff(ids, n, want, n_want) >= 0) {
            if (!n_bad++) snprintf(first_bad, sizeof first_bad, "line %d \"%.60s\": first difference at %d", n_lines,
                                   text, first_diff(ids, n, want, n_want));
        } else {
            size_t out_len;
            char *back = detok_all(v, ids, n, false, &out_len);
            if (!back || out_len != n_dec || memcmp(back, dec, n_dec)) n_bad_decode++;
            free(back);
        }
        free(ids);
        if (tokenize(v, text, len, LC_TOK_ADD_BOS, &ids, &n) || first_diff(ids, n, want_bos, n_want_bos) >= 0)
            n_bad_bos++;
        free(ids);
        free(text), free(want), free(want_bos), free(dec);
    }
    fclose(fp);
    lc_vocab_free(v);
    CHECK_EQ_INT(n_lines, 328);
    CHECKF(n_bad == 0, "%d of %d lines differ from SentencePiece; %s", n_bad, n_lines, first_bad);
    CHECK_EQ_INT(n_bad_bos, 0);
    CHECK_EQ_INT(n_bad_decode, 0);
}

TEST(spm_model_malformed) {
    /* a hand-written ModelProto: one piece "a" (score 0.5, NORMAL), trainer model_type BPE */
    unsigned char ok[] = {0x0A, 0x0A, 0x0A, 0x01, 'a', 0x15, 0x00, 0x00, 0x00, 0x3F, 0x18, 0x01,
                          0x12, 0x02, 0x18, 0x02};
    lc_vocab *v = NULL;
    CHECK_OK(lc_vocab_from_spm_model_buf(ok, sizeof ok, "mini.model", &v));
    CHECK(lc_vocab_n(v) == 1 && lc_vocab_score(v, 0) == 0.5f && lc_vocab_bos(v) == -1 && lc_vocab_unk(v) == 0);
    lc_vocab_free(v);
    for (size_t cut = 1; cut < sizeof ok; cut++) { /* every truncation is an error, never a crash */
        int r = lc_vocab_from_spm_model_buf(ok, cut, "cut.model", &v);
        CHECK(r != LC_OK && v == NULL);
    }
    unsigned char unigram[] = {0x0A, 0x03, 0x0A, 0x01, 'a', 0x12, 0x02, 0x18, 0x01};
    CHECK_EQ_INT(lc_vocab_from_spm_model_buf(unigram, sizeof unigram, "uni.model", &v), LC_E_UNSUPPORTED);
    unsigned char huge_len[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F};
    CHECK_EQ_INT(lc_vocab_from_spm_model_buf(huge_len, sizeof huge_len, "huge.model", &v), LC_E_FORMAT);
    CHECK(strstr(lc_last_error(), "huge.model") && strstr(lc_last_error(), "offset"));
    unsigned char group[] = {0x0B, 0x0C};
    CHECK_EQ_INT(lc_vocab_from_spm_model_buf(group, sizeof group, "group.model", &v), LC_E_FORMAT);
}

/* Every allocation failing in turn: loading and tokenizing return LC_E_NOMEM (or succeed when the failing
** allocation came after the work), never crash or leak (the ASan build checks the leaks). */
TEST(out_of_memory) {
    unsigned char buf[256];
    const char *pieces[] = {"<unk>", "<s>", "</s>", "<0x41>", " a", "b", " ab"};
    int32_t lens[] = {5, 3, 4, 6, 2, 1, 3};
    size_t size = l2c_build(buf, 6, pieces, lens, 7);
    int n_nomem = 0, n_ok = 0;
    for (long k = 1; k < 400; k++) {
        lc_vocab *v = NULL;
        lc__alloc_fail_after(k);
        int r = lc_vocab_from_llama2c_buf(buf, size, "oom.bin", 7, &v);
        if (r == LC_OK) {
            int32_t ids[16];
            size_t n;
            r = lc_vocab_tokenize(v, "ab ab <s> b\xC3", 12, LC_TOK_ADD_BOS | LC_TOK_PARSE_SPECIAL, ids, 16, &n);
        }
        lc__alloc_fail_after(0);
        lc_vocab_free(v);
        CHECKF(r == LC_OK || r == LC_E_NOMEM, "k %ld: status %d (%s)", k, r, lc_last_error());
        if (r == LC_E_NOMEM) n_nomem++;
        else n_ok++;
    }
    CHECK(n_nomem > 5 && n_ok > 0); /* the sweep reached past the last allocation */
}

int main(void) {
    RUN(gguf_vocab_metadata);
    RUN(spm_matches_llama_cpp);
    RUN(bos_and_manifest_golden);
    RUN(buffer_contract);
    RUN(round_trip);
    RUN(llama2c_vocab_equals_gguf);
    RUN(llama2c_malformed);
    RUN(arrays_errors);
    RUN(gguf_malformed_tokenizer);
    RUN(no_byte_fallback);
    RUN(long_input_is_fast);
    RUN(random_bytes);
    RUN(llama2_sentencepiece);
    RUN(spm_model_malformed);
    RUN(out_of_memory);
    lc_vocab_free(g_stories);
    gguf_close(g_stories_f);
    return TEST_SUMMARY();
}
