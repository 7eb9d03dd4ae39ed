/* builtin.c - the chat template of a model: its own tokenizer.chat_template, or, for a file without one, llamac's
** template for the model's family. The built-in texts are written for llamac (not copies of Meta's); they give the
** official prompt format of plain conversations (system, user, assistant turns) - tests/test_jinja.c checks them
** against the official templates' Jinja2 renders - and carry no tool support.
*/
#include "chat.h"

#include "../model/model.h"
#include "../tokenizer/tokenizer.h"

#include <string.h>

/* Llama 3, 3.1, 3.2: header, trimmed content, end of turn; BOS before the first message. */
static const char k_llama3[] =
    "{%- for m in messages -%}\n"
    "    {%- if loop.first %}{{ bos_token }}{% endif -%}\n"
    "    {{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    "{%- endif -%}\n";

/* Llama 2 chat: [INST] turns, the system prompt folded into the first user turn, roles must alternate. */
static const char k_llama2[] =
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- set system = messages[0]['content'] -%}\n"
    "    {%- set turns = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set system = none -%}\n"
    "    {%- set turns = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for m in turns -%}\n"
    "    {%- if (m['role'] == 'user') != loop.index0 is even -%}\n"
    "        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}\n"
    "    {%- endif -%}\n"
    "    {%- set text = m['content'] -%}\n"
    "    {%- if loop.first and system is not none -%}\n"
    "        {%- set text = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + text -%}\n"
    "    {%- endif -%}\n"
    "    {%- if m['role'] == 'user' -%}\n"
    "        {{- bos_token + '[INST] ' + text.strip() + ' [/INST]' -}}\n"
    "    {%- elif m['role'] == 'assistant' -%}\n"
    "        {{- ' ' + text.strip() + ' ' + eos_token -}}\n"
    "    {%- endif -%}\n"
    "{%- endfor -%}\n";

const char *lc__builtin_template(int llama3, size_t *len) {
    *len = llama3 ? sizeof k_llama3 - 1 : sizeof k_llama2 - 1;
    return llama3 ? k_llama3 : k_llama2;
}

int lc_model_chat_template(const lc_model *m, const char **src, size_t *len, bool *builtin) {
    *src = NULL, *len = 0, *builtin = false;
    gguf_str s;
    if (m->file && gguf_get_str(m->file, "tokenizer.chat_template", &s) == 1 && s.len) {
        *src = s.ptr, *len = (size_t)s.len;
        return 0;
    }
    if (!m->vocab)
        return LC_ERR(LC_E_UNSUPPORTED, "the model has no chat template and no vocabulary to tell its family: "
                                        "give a template file");
    *src = lc__builtin_template(lc_vocab_get_kind(m->vocab) == LC_VOCAB_BPE, len);
    *builtin = true;
    return 0;
}
