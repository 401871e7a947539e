#!/usr/bin/env python3
"""Generate the expected outputs runtime/tmpl's tests compare against.

Writes, next to this script:

  chat_fixtures.json   every template in templates/*.jinja (lorac's own
                       templates in the chat formats of Llama 3.x, Mistral,
                       Qwen2.5, Qwen3 and Gemma, and the built-in ChatML)
                       rendered by transformers' apply_chat_template
                       (tokenize=False) on a set of conversations, with and
                       without the generation prompt: the text, or the error
  jinja_cases.json     small templates, one or a few constructs each,
                       rendered in the Jinja environment transformers builds
                       for chat templates: the text, or the error and whether
                       it came from parsing
  random_cases.json    random templates (seeded) mixing expressions,
                       filters, tests, loops and whitespace control, rendered
                       the same way: a differential test of the whole
  strftime_cases.json  strftime of a fixed date, for strftime_now

Run it with a Python that has transformers and tokenizers (see
conformance/requirements.txt):

    python runtime/tmpl/testdata/make_fixtures.py
"""

import copy
import datetime
import glob
import json
import os
import random

import jinja2
import tokenizers
import transformers
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast
from transformers.utils import chat_template_utils

HERE = os.path.dirname(os.path.abspath(__file__))

# Special tokens per template, as the families' tokenizer configs set them.
TOKENS = {
    "chatml": {"eos_token": "<|im_end|>"},
    "chatml_generation": {"eos_token": "<|im_end|>"},
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "mistral": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "qwen25": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "qwen3": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "gemma": {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"},
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city"],
        },
    },
}

CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}

U = "user"
A = "assistant"
S = "system"


def m(role, content, **extra):
    d = {"role": role, "content": content}
    d.update(extra)
    return d


# Conversations every template renders.
COMMON = {
    "single": [m(U, "Hello!")],
    "system": [m(S, "You are terse."), m(U, "What is 2+2?")],
    "multi": [m(S, "You are a helpful assistant."), m(U, "Hi"), m(A, "Hello, how can I help?"), m(U, "Tell me a joke.")],
    "no_system_multi": [m(U, "One"), m(A, "Two"), m(U, "Three")],
    "unicode": [
        m(U, "Grüße, 世界! 🚀 naïve café — “quotes” ‘x’ \u200b zero-width, שלום, e\u0301"),
        m(A, "Ça va ✓ 👍🏽"),
        m(U, "日本語で？ 𝄞"),
    ],
    "whitespace": [
        m(S, "  \n\tbe brief\n\n "),
        m(U, "\n\n  line one\n   line two  \n\n"),
        m(A, "  spaced answer\t\n"),
        m(U, "   "),
    ],
    "template_text": [m(U, "{{ not a tag }} {% neither %} {# nor this #} \\n")],
    "two_users": [m(U, "first"), m(U, "second")],
    "assistant_first": [m(A, "I speak first."), m(U, "ok")],
}

TOOL_CONVERSATION = [
    m(S, "You check the weather."),
    m(U, "Weather in Paris?"),
    {"role": A, "content": None, "tool_calls": [CALL]},
    m("tool", '{"temperature": 21, "sky": "clear"}'),
    m(A, "It is 21 °C and clear in Paris."),
]

EXTRA = {
    "llama3": {
        "tools": [TOOL_CONVERSATION, {"tools": [WEATHER_TOOL]}],
        "tools_two_calls": [[m(U, "x"), {"role": A, "content": "", "tool_calls": [CALL, CALL]}], {"tools": [WEATHER_TOOL]}],
    },
    "mistral": {
        "tool_role": [[m(U, "x"), m("tool", "y")], {}],
    },
    "qwen25": {
        "tools": [TOOL_CONVERSATION, {"tools": [WEATHER_TOOL]}],
        "tools_no_system": [TOOL_CONVERSATION[1:], {"tools": [WEATHER_TOOL]}],
        "two_tool_results": [
            [
                m(U, "Paris and Rome?"),
                {"role": A, "content": "Checking both.", "tool_calls": [CALL, {"name": "get_weather", "arguments": {"city": "Rome"}}]},
                m("tool", "21"),
                m("tool", "25"),
            ],
            {"tools": [WEATHER_TOOL]},
        ],
    },
    "qwen3": {
        "tools": [TOOL_CONVERSATION, {"tools": [WEATHER_TOOL]}],
        "think_in_content": [
            [
                m(U, "q1"),
                m(A, "<think>\nreason A\n</think>\n\nanswer A"),
                m(U, "q2"),
                m(A, "<think>reason B</think>answer B"),
            ],
            {},
        ],
        "reasoning_field": [[m(U, "Why?"), m(A, "42", reasoning_content="Because it is.")], {}],
        "no_thinking": [[m(U, "Quick one.")], {"enable_thinking": False}],
        "multi_step_tool": [
            [
                m(U, "Plan a trip."),
                {"role": A, "content": "<think>need weather</think>", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
                m("tool", "-3"),
                m(U, "<tool_response>\nlate result\n</tool_response>"),
                m(A, "<think>cold</think>Pack a coat."),
            ],
            {"tools": [WEATHER_TOOL]},
        ],
    },
    "gemma": {
        "parts": [[{"role": U, "content": [{"type": "image"}, {"type": "text", "text": "  Describe this.  "}]}], {}],
    },
}

# Template variables per template for every conversation.
VARS = {"llama3": {"date_string": "26 Jul 2024"}}


def tokenizer(name, template):
    vocab = {"<unk>": 0}
    for t in TOKENS[name].values():
        vocab.setdefault(t, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, chat_template=template, **TOKENS[name])


def generation_spans(template, tok, messages, gen, kw, output):
    """The byte ranges of the {% generation %} blocks, from the render
    transformers makes for return_assistant_tokens_mask."""
    kw = dict(kw)
    tools = kw.pop("tools", None)
    clean = [{k: v for k, v in msg.items() if v is not None} for msg in messages]
    rendered, indices = chat_template_utils.render_jinja_template(
        conversations=[clean],
        tools=tools,
        chat_template=template,
        return_assistant_tokens_mask=True,
        add_generation_prompt=gen,
        **{**tok.special_tokens_map, **kw},
    )
    assert rendered[0] == output, "the tracked render differs from apply_chat_template's"
    to_bytes = lambda i: len(output[:i].encode("utf-8"))
    return [[to_bytes(s), to_bytes(e)] for s, e in indices[0]]


def chat_fixtures():
    out = []
    for path in sorted(glob.glob(os.path.join(HERE, "templates", "*.jinja"))):
        name = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as f:
            template = f.read()
        tok = tokenizer(name, template)
        convs = {k: [v, {}] for k, v in COMMON.items()}
        convs.update(EXTRA.get(name, {}))
        for conv_name, (messages, kwargs) in convs.items():
            for gen in (False, True):
                kw = dict(VARS.get(name, {}))
                kw.update(kwargs)
                case = {
                    "template": name,
                    "conversation": conv_name,
                    "messages": messages,
                    "add_generation_prompt": gen,
                    "vars": {k: v for k, v in kw.items() if k != "tools"},
                    "tools": kw.get("tools"),
                    "tokens": TOKENS[name],
                }
                try:
                    case["output"] = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen, **kw)
                    case["generation_spans"] = generation_spans(template, tok, messages, gen, kw, case["output"])
                except jinja2.TemplateError as e:
                    case["error"] = type(e).__name__
                    case["message"] = str(e)
                out.append(case)
    return out


# Jinja constructs, one or a few per case. vars are the template variables.
JINJA = [
    ("text", "plain text", {}),
    ("trailing_newline", "a\n", {}),
    ("two_trailing_newlines", "a\n\n", {}),
    ("crlf", "a\r\nb\r\n{% if true %}\r\nc\r\n{% endif %}\r\n", {}),
    ("var", "{{ x }}", {"x": "v"}),
    ("var_int_float", "{{ 1 }} {{ 1.5 }} {{ 2.0 }} {{ 1e-5 }} {{ 1e16 }} {{ 123456789.125 }} {{ 0.1 + 0.2 }}", {}),
    ("literals", "{{ [1, 'a', none, true, false, None, True, 1.5, {'k': \"v'\"}] }}", {}),
    ("string_escapes", r"""{{ 'a\nb\tc\\d\'e"f' }}|{{ "\u00e9\x41\101\q" }}|{{ 'x' "y" 'z' }}""", {}),
    ("unicode_literal", "{{ 'ünï ✓' ~ \"🚀\" }}", {}),
    ("undefined_renders_empty", "[{{ missing }}][{{ d.nokey }}][{{ d['nokey'] }}][{{ l[9] }}]", {"d": {"a": 1}, "l": [1]}),
    ("undefined_attr_of_undefined", "{{ missing.attr }}", {}),
    ("undefined_add", "{{ missing + 1 }}", {}),
    ("undefined_iter_len", "{% for x in missing %}x{% else %}empty{% endfor %} {{ missing | length }} {{ missing | default('dflt') }}", {}),
    ("undefined_concat", "[{{ missing ~ 'x' }}]", {}),
    ("none_attr", "[{{ n.attr }}]", {"n": None}),
    ("if_elif_else", "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}other{% endif %};{% endfor %}", {}),
    ("truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, none, 0.0] %}{{ 'T' if v else 'F' }}{% endfor %}", {}),
    ("loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}", {}),
    ("loop_prev_next", "{% for x in [1, 2, 3] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }};{% endfor %}", {}),
    ("loop_cycle", "{% for x in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}", {}),
    ("for_else", "{% for x in [] %}x{% else %}none{% endfor %}", {}),
    ("for_filter", "{% for x in range(10) if x is odd %}{{ x }}{{ ',' if not loop.last }}{% endfor %}", {}),
    ("for_unpack_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"z": 1, "a": 2, "m": 3}}),
    ("for_dict_keys", "{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("nested_loops", "{% for a in [1, 2] %}{% for b in [3, 4] %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("loop_scope", "{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = x + i %}{{ x }};{% endfor %}{{ x }}", {}),
    ("if_scope", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("namespace", "{% set ns = namespace(total=0, seen=false) %}{% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }} {{ ns.seen }}", {}),
    ("namespace_underscore", "{% set ns = namespace() %}{% set ns._x = 1 %}", {}),
    ("break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("set_tuple", "{% set a, b = [1, 2] %}{{ b }}{{ a }}{% set c = 1, 2 %}{{ c }}", {}),
    ("set_block", "{% set body %}  inner {{ 1 + 1 }}\n{% endset %}[{{ body }}]", {}),
    ("whitespace_control", "a  {%- if true -%}  b  {%- endif -%}  c {{- ' d ' -}} e\n  {{ 'f' }}  ", {}),
    ("trim_lstrip_blocks", "<ul>\n    {% for i in [1, 2] %}\n    <li>{{ i }}</li>\n    {% endfor %}\n</ul>\n", {}),
    ("lstrip_plus", "x\n    {%+ if true %}y{% endif %}\n  {# c #}\nz", {}),
    ("trim_plus", "{% if true +%}\nkept newline{% endif %}", {}),
    ("comment", "a{# comment {{ x }} #}b\n{# own line #}\nc", {}),
    ("comment_strip", "a  {#- strip -#}  b", {}),
    ("raw", "{% raw %}{{ not evaluated }}{% endraw %}", {}),
    ("var_no_lstrip", "  {{ 'x' }}\n  {% if true %}y{% endif %}", {}),
    ("arith", "{{ 7 + 2 }} {{ 7 - 2 }} {{ 7 * 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1.5 * 2 }} {{ 7.5 // 2 }} {{ -1.5 % 1 }}", {}),
    ("arith_precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }} {{ 1 ~ (2 + 3) }} {{ 'a' ~ 1 * 2 }}", {}),
    ("concat_binds_tighter_than_plus", "{{ 1 ~ 2 + 3 }}", {}),
    ("division_by_zero", "{{ 1 / 0 }}", {}),
    ("string_plus_int", "{{ 'a' + 1 }}", {}),
    ("concat", "{{ 'a' ~ 1 ~ none ~ true ~ [1] }}", {}),
    ("string_ops", "{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ [1] + [2, 3] }} {{ [0] * 3 }}", {}),
    ("compare", "{{ 1 < 2 }} {{ 2 <= 2 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 != '1' }} {{ [1, 2] == [1, 2] }} {{ true == 1 }} {{ none == none }} {{ [1, 2] < [1, 3] }}", {}),
    ("compare_type_error", "{{ 1 < 'a' }}", {}),
    ("in_not_in", "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'z' not in d }} {{ 3 not in [1] }}", {"d": {"k": 1}}),
    ("and_or_not", "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 'z' }} {{ not 0 }} {{ not 'a' }} {{ none or [] }}", {}),
    ("not_precedence", "{{ not 1 == 2 }} {{ not true and false }} {{ not (true and false) }}", {}),
    ("ternary", "{{ 'yes' if x else 'no' }} {{ 'a' if false else 'b' if true else 'c' }} [{{ 'only' if false }}]", {"x": 1}),
    ("attr_item", "{{ d.a }} {{ d['a'] }} {{ l[0] }} {{ l[-1] }} {{ d.b.c }} {{ d['b']['c'] }} {{ l.1 }}", {"d": {"a": 1, "b": {"c": "deep"}}, "l": [10, 20]}),
    ("dict_method_vs_key", "{{ d.items is callable }}|{{ d['items'] }}|{{ d.get('x', 'dflt') }}|{{ d.get('items') }}", {"d": {"items": "key"}}),
    ("slices", "{{ l[1:] }} {{ l[:2] }} {{ l[::-1] }} {{ l[::2] }} {{ l[-2:] }} {{ l[1:-1] }} {{ s[::-1] }} {{ s[1:3] }} {{ l[5:] }}", {"l": [1, 2, 3, 4], "s": "héllo"}),
    ("string_index", "{{ s[0] }}{{ s[-1] }}{{ s | length }}", {"s": "üñï"}),
    ("tests", "{{ x is defined }} {{ y is undefined }} {{ n is none }} {{ s is string }} {{ d is mapping }} {{ l is iterable }} {{ s is iterable }} {{ l is sequence }} {{ 1 is number }} {{ 1.5 is number }} {{ s is number }} {{ true is true }} {{ 0 is false }} {{ false is false }}", {"x": 1, "n": None, "s": "s", "d": {}, "l": []}),
    ("tests_more", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 1 is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ 'x' is eq 'x' }} {{ 2 is equalto 3 }} {{ 1 is in [1] }} {{ d is not mapping }} {{ none is not none }}", {"d": {}}),
    ("test_on_undefined_types", "{{ u is string }} {{ u is mapping }} {{ u is iterable }} {{ u is number }} {{ u is none }}", {}),
    ("filter_trim", "[{{ '  a b \n' | trim }}][{{ 'xxaxx' | trim('x') }}][{{ none | trim }}]", {}),
    ("filter_length", "{{ 'héllo' | length }} {{ [1, 2] | count }} {{ d | length }}", {"d": {"a": 1}}),
    ("filter_case", "{{ 'hello WORLD' | upper }} {{ 'Hello' | lower }} {{ 'hello world-wide (x' | title }} {{ 'hELLO world' | capitalize }}", {}),
    ("filter_default", "{{ missing | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ none | d('n') }} {{ 0 | d(5, boolean=true) }}", {}),
    ("filter_first_last", "{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ 'abc' | first }} {{ 'abc' | last }} [{{ [] | first }}]", {}),
    ("filter_join", "{{ [1, 'a', none] | join }} {{ ['a', 'b'] | join(', ') }} {{ users | join('/', attribute='name') }}", {"users": [{"name": "x"}, {"name": "y"}]}),
    ("filter_replace", "{{ 'aaa' | replace('a', 'b') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'ab' | replace('', '-') }}", {}),
    ("filter_list_items", "{{ 'ab' | list }} {{ d | list }} {{ d | items | list }} {% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}", {"d": {"x": 1, "y": 2}}),
    ("filter_select", "{{ l | select('odd') | list }} {{ l | reject('odd') | list }} {{ [0, 1, '', 'a'] | select | list }} {{ l | select('equalto', 2) | list }}", {"l": [1, 2, 3, 4]}),
    ("filter_selectattr", "{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }} {{ ms | rejectattr('role', 'equalto', 'user') | list | length }} {{ ms | selectattr('flag') | list | length }}", {"ms": [{"role": "user", "content": "a", "flag": True}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}),
    ("filter_reject_equalto", "{{ tools | reject('equalto', 'code_interpreter') | join(', ') }}", {"tools": ["brave_search", "code_interpreter", "wolfram_alpha"]}),
    ("filter_map", "{{ ['a', 'b'] | map('upper') | join }} {{ l | map(attribute='x', default='?') | list }} {{ ['1', '2'] | map('int') | sum }}", {"l": [{"x": 1}, {}]}),
    ("filter_string_int_float", "{{ 12 | string ~ 'x' }} {{ '42' | int + 1 }} {{ 'x' | int }} {{ '3.7' | int }} {{ 3.9 | int }} {{ 'x' | int(7) }} {{ '2.5' | float }} {{ 'ff' | int(base=16) }}", {}),
    ("filter_safe_abs_round", "{{ '<b>' | safe }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 2.1 | round(method='ceil') }}", {}),
    ("filter_reverse_sort", "{{ [3, 1, 2] | sort | list }} {{ [3, 1, 2] | sort(reverse=true) | list }} {{ ['b', 'A', 'c'] | sort | list }} {{ [1, 2, 3] | reverse | list }} {{ 'abc' | reverse }}", {}),
    ("filter_indent", "[{{ 'a\nb\n\nc' | indent }}][{{ 'a\nb' | indent(2, true) }}][{{ 'a\n\nb' | indent('> ', blank=true) }}]", {}),
    ("filter_on_filter_precedence", "{{ 'a' + ' b ' | trim + 'c' }} {{ -3 | abs }} {{ [1, 2] | length * 2 }}", {}),
    ("filter_dictsort", "{{ d | dictsort }} {{ d | dictsort(by='value') }} {{ d | dictsort(reverse=true) }} {% for k, v in d | dictsort %}{{ k }}{% endfor %}", {"d": {"b": 3, "A": 2, "c": 1}}),
    ("filter_unique_min_max", "{{ ['a', 'A', 'b', 'a'] | unique | list }} {{ [3, 1, 2] | min }} {{ [3, 1, 2] | max }} {{ ['b', 'A', 'c'] | min }} {{ us | max(attribute='n') }} {{ us | unique(attribute='k') | list | length }} [{{ [] | max }}]", {"us": [{"n": 1, "k": "x"}, {"n": 5, "k": "x"}]}),
    ("repr_nonprintable", "{{ ['\u200b', '\xa0', 'é', '\x7f', '\x00', '\U0001f680', '\u2028', \"it's\", 'both\\'\"'] }}", {}),
    ("string_formatting", "{{ '%s and %s' % ('a', 1) }}|{{ '%d%%' % 42 }}|{{ '%5.2f|%-4s|%04d|%x' % (3.14159, 'ab', 7, 255) }}|{{ '%(name)s=%(v)r' % {'name': 'k', 'v': 'x'} }}|{{ '%s' % [1, 2] }}|{{ '%r' % none }}|{{ 'no args' % () }}", {}),
    ("format_filter", "{{ '%s-%s' | format('a', 'b') }} {{ '%(x)s' | format(x=5) }} {{ '%.1f' | format(2.25) }} {{ '%e' | format(12345.678) }} {{ '%g' | format(0.0001) }} {{ '%g' | format(1234567.0) }} {{ '%G' | format(1e-10) }}", {}),
    ("err_format_too_many", "{{ '%s' % (1, 2) }}", {}),
    ("err_format_too_few", "{{ '%s %s' % (1,) }}", {}),
    ("tojson", "{{ d | tojson }}", {"d": {"b": [1, 2.5, None, True], "a": "ünï \"q\" \n\t</script>", "n": {}, "e": []}}),
    ("tojson_indent", "{{ d | tojson(indent=2) }}", {"d": {"b": [1, {"x": []}], "a": {"k": "v"}}}),
    ("tojson_options", "{{ d | tojson(ensure_ascii=true) }} {{ d | tojson(sort_keys=true) }} {{ d | tojson(separators=(',', ':')) }}", {"d": {"z": "é🚀", "a": [1, 2]}}),
    ("tojson_scalars", "{{ 'x' | tojson }} {{ 1 | tojson }} {{ 1.0 | tojson }} {{ none | tojson }} {{ false | tojson }} {{ [] | tojson(indent=4) }}", {}),
    ("tojson_undefined", "{{ missing | tojson }}", {}),
    ("str_methods", "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ '--a--'.strip('-') }}][{{ 'xa'.lstrip('x') }}][{{ 'ax\n'.rstrip('\n') }}]", {"s": "  a b  "}),
    ("str_split", "{{ 'a b  c'.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'x</think>y</think>z'.split('</think>')[-1] }} {{ 'a b c'.rsplit(' ', 1) }} {{ '  a  b '.split(none, 1) }}", {}),
    ("str_starts_ends", "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith('lo') }} {{ 'hello'.startswith(('x', 'h')) }} {{ 'hello'.endswith('x') }}", {}),
    ("str_case_replace", "{{ 'aBc'.upper() }} {{ 'aBc'.lower() }} {{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }} {{ 'aaa'.replace('a', 'b', 1) }} {{ 'abc'.find('c') }} {{ 'abab'.count('ab') }} {{ '-'.join(['a', 'b']) }}", {}),
    ("dict_methods", "{{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }} {{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 0) }}", {"d": {"a": 1, "b": 2}}),
    ("dict_literal_and_global", "{% set d = {'x': 1, 'y': [2]} %}{{ d.x }}{{ d['y'][0] }} {{ dict(a=1, b=2) }}", {}),
    ("range", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(3, 0, -1) | list }}", {}),
    ("raise_exception", "{{ raise_exception('Something is wrong: ' ~ 42) }}", {}),
    ("raise_in_branch", "{% for m in ms %}{% if m != 1 %}{{ raise_exception('bad item ' ~ loop.index) }}{% endif %}{{ m }}{% endfor %}", {"ms": [1, 1, 2]}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bo', punct='?') }} {{ greet(name='Cy') }}", {}),
    ("macro_call_block", "{% macro box() %}[{{ caller() }}]{% endmacro %}{% call box() %}inside{% endcall %}", {}),
    ("generation_block", "{% for m in ms %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}|{% endfor %}", {"ms": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}),
    ("int_float_output", "{{ 3 / 1 }} {{ 10 ** 15 // 10 ** 14 }} {{ (1, 2) }} {{ (1,) }} {{ () }} {{ (1, 2) == [1, 2] }} {{ (1, 2)[1:] }} {{ 0.000123 }} {{ 1e100 }} {{ -0.0 }}", {}),
    ("str_split_maxsplit", "{{ ' a  b  c '.split(none, 1) }} {{ ' a  b  c '.rsplit(none, 1) }} {{ 'a'.split(none, 3) }} {{ '   '.split(none, 1) }} {{ 'a,b,c'.rsplit(',', 1) }}", {}),
    ("integer_overflow", "{{ 2 ** 64 }}", {}),
    ("ws_tabs_lstrip", "a\n\t \t{% if true %}\n\tb\n\t{% endif %}\n  \t{# c #}  \nd", {}),
    ("ws_tag_after_text", "text {% if true %}\nx{% endif %} more\n  {% if true %} y{% endif %}", {}),
    ("ws_start_of_template", "   {% if true %}a{% endif %}\n   {{ 'b' }}", {}),
    ("ws_minus_both_sides", "a\n\n  {%- for i in [1, 2] -%}\n  [{{ i }}]\n  {%- endfor -%}\n\n b", {}),
    ("ws_var_minus", "a \n {{- 'b' -}} \n c {{ 'd' -}}\n\ne", {}),
    ("ws_comment_minus", "a\n  {#- x -#}\n  b\n{#- y #}\nc", {}),
    ("ws_trim_only_one_newline", "{% if true %}\n\nx{% endif %}\n\n", {}),
    ("ws_endraw", "  {% raw %}\n  {{ x }}\n  {% endraw %}\nafter", {}),
    ("ws_set_block_lines", "{% set x %}\n  line\n{% endset %}[{{ x }}]", {}),
    ("ws_unicode_space_strip", "a\u3000\u00a0{%- if true %}b{% endif %}", {}),
    ("ws_crlf_trim", "{% if true %}\r\nx\r\n{% endif %}\r\ny", {}),
    ("loop_filter_length_last", "{% for x in [1, 2, 3, 4] if x > 1 %}{{ loop.index }}/{{ loop.length }}{{ '.' if loop.last }} {% endfor %}", {}),
    ("undefined_attr_is_defined_error", "{{ foo.bar is defined }}", {}),
    ("defined_and_truthy", "{{ 'a' if x is defined and x else 'b' }}{{ 'c' if y is defined and y else 'd' }}", {"x": ""}),
    ("content_is_string", "{% for m in ms %}{% if m['content'] is string %}s{% else %}{% for p in m['content'] %}{{ p['text'] }}{% endfor %}{% endif %}{% endfor %}", {"ms": [{"content": "x"}, {"content": [{"type": "text", "text": "T"}]}]}),
    ("equality_mixed", "{{ 'a' == none }} {{ none == false }} {{ 0 == false }} {{ [] == [] }} {{ {} == {} }} {{ missing == missing }}", {}),
    ("getitem_int_on_dict", "{{ d[1] }} {{ d['1'] }}", {"d": {"1": "str key"}}),
    ("negative_index_and_string_attr", "{{ l[-5] }}[{{ s.nosuch }}]", {"l": [1], "s": "x"}),
    ("nested_data_repr", "{{ d }} {{ l }}", {"d": {"a": [1, {"b": None}], "c": "it's"}, "l": ["x", 1.0, True]}),
    ("messages_like", "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<sys>{% endif %}<{{ message['role'] }}>{{ message['content'] | trim }}</{{ message['role'] }}>\n{% endfor %}", {"messages": [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo\n"}]}),
    # Parse errors.
    ("err_unclosed_if", "{% if true %}x", {}),
    ("err_lines", "line 1\n{% for m in ms %}\n  {{ m.content | trim }}\n  {{ m.role ~ }}\n{% endfor %}", {}),
    ("err_lines_filter", "a\nb\n{% if x %}\n{{ y | nosuch }}{% endif %}", {}),
    ("unknown_filter_in_if_not_run", "{% if false %}{{ x | nosuch }}{% elif x is nosuchtest %}y{% else %}ok{% endif %}", {}),
    ("unknown_filter_in_ternary", "{{ (x | nosuch) if false else 'ok' }}", {}),
    ("unknown_filter_in_if_runs", "{% if true %}{{ x | nosuch }}{% endif %}", {}),
    ("err_unknown_filter_in_for_in_if", "{% if false %}{% for i in [] %}{{ i | nosuch }}{% endfor %}{% endif %}", {}),
    ("err_unknown_test_in_set", "{% set y = x is nosuch %}", {}),
    ("err_lines_string", "a\n{{ 'x\ny }}\n", {}),
    ("err_lines_unclosed_block", "a\n{% if x %}\nb\n{% else %}\nc\n", {}),
    ("err_lines_bad_token", "a\n\n{{ x $ y }}", {}),
    ("err_lines_comment", "a\n{# open\ncomment", {}),
    ("err_unknown_filter", "{{ x | nosuchfilter }}", {}),
    ("err_unknown_test", "{{ x is nosuchtest }}", {}),
    ("err_unknown_tag", "{% frobnicate %}", {}),
    ("err_bad_expr", "{{ 1 + }}", {}),
    ("err_unclosed_var", "{{ x ", {}),
    ("err_unclosed_string", "{{ 'abc }}", {}),
    ("err_endfor_mismatch", "{% for x in y %}{% endif %}", {}),
    # Render errors.
    ("err_break_outside_loop", "{% break %}", {}),
    ("err_break_in_macro_in_loop", "{% for i in [1] %}{% macro m() %}{% break %}{% endmacro %}{% endfor %}", {}),
    ("err_continue_in_for_else", "{% for i in [] %}{% else %}{% continue %}{% endfor %}", {}),
    ("break_in_set_block", "{% for i in [1, 2] %}{% set x %}{% break %}{% endset %}{{ i }}{% endfor %}x", {}),
    ("err_call_undefined", "{{ nofunc() }}", {}),
    ("err_lines_render", "a\n{% for m in ms %}\n{{ m.x }}\n{{ m.y + 1 }}\n{% endfor %}", {"ms": [{"x": 1}]}),
    ("err_lines_raise", "a\n\n{% if true %}\n  {{ raise_exception('line four') }}\n{% endif %}", {}),
    ("err_lines_filter_arg", "{% set x = 1 %}\n{{ x | join }}", {}),
    ("err_not_callable", "{{ x() }}", {"x": 1}),
    ("err_unpack", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}),
    ("err_iterate_int", "{% for a in 5 %}{% endfor %}", {}),
    ("err_set_attr_non_namespace", "{% set d = {} %}{% set d.x = 1 %}", {}),
]


def template_line(e):
    """The template line a render error happened on, from the traceback
    jinja2 rewrites to point into the template."""
    line = None
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def jinja_cases():
    out = []
    for name, src, variables in JINJA:
        case = {"name": name, "template": src, "vars": variables}
        try:
            t = chat_template_utils._compile_jinja_template(src)
        except Exception as e:  # noqa: BLE001 - jinja2 fails some templates with Python's SyntaxError
            case["error"] = type(e).__name__
            case["message"] = str(e)
            case["phase"] = "parse"
            if isinstance(e, jinja2.TemplateSyntaxError):
                case["line"] = e.lineno
            out.append(case)
            continue
        try:
            case["output"] = t.render(**variables)
        except Exception as e:  # noqa: BLE001 - any error is the expected result
            case["error"] = type(e).__name__
            case["message"] = str(e)
            case["phase"] = "render"
            line = template_line(e)
            if line is not None:
                case["line"] = line
        out.append(case)
    return out


# Building blocks of random templates. Left out on purpose: safe
# (prints as Markup(...) inside lists), dict views in arithmetic (set
# operations) and printing lazy generators (their repr holds an address).
R_ATOMS = ["x", "y", "s", "l", "d", "n", "u", "1", "0", "-2", "2.5", "'ab c'", "''", "' \\n'", "none", "true", "false",
           "[1, 'a']", "{'k': 1}", "(1, 2)", "m.role", "m['content']", "l[0]", "l[-1]", "s[1:]", "l[::-1]", "d.k",
           "d.get('z', 3)", "d.items() | list", "s.split()", "s.strip()", "ms[0].content", "s.split(' ')[-1]",
           "s.startswith(' H')", "s.replace('l', 'L', 1)", "'a,b,c'.split(',', 1)", "s[::2]", "l[1:-1]",
           "s.rstrip(' o')", "d['a']", "ms | map(attribute='role') | join", "x ** 2", "(x, y)[1]", "range(x) | list"]
R_LOOP = ["loop.index", "loop.index0", "loop.revindex", "loop.first", "loop.last", "loop.length",
          "loop.previtem", "loop.nextitem", "loop.cycle('a', 'b')"]
R_OPS = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in", "and", "or"]
R_FILTERS = ["trim", "length", "upper", "lower", "title", "capitalize", "first", "last", "list", "string", "int",
             "float", "abs", "tojson", "join(',')", "default('D')", "replace('a', 'b')", "indent(2)", "sort",
             "unique | list", "min", "max", "items | list", "select('odd') | list", "map('string') | list", "count",
             "tojson(indent=1)", "dictsort", "sum", "round", "reverse | list", "trim('x ')", "d", "first | string"]
R_TESTS = ["defined", "undefined", "none", "string", "mapping", "iterable", "sequence", "number", "true", "false",
           "odd", "even", "integer", "float", "boolean", "divisibleby 2", "equalto 1", "in [1, 'ab c']"]
R_SPACE = ["", " ", "\n", "  \n  ", "\t", "\n\n"]
R_VARS = {"x": 3, "y": "ab c", "s": " Hé llo ", "l": [3, 1, 2], "d": {"k": "v", "a": 1}, "n": None,
          "ms": [{"role": "user", "content": " hi "}], "m": {"role": "user", "content": " x "}}


def r_expr(rng, depth=0):
    r = rng.random()
    if depth > 2 or r < 0.3:
        return rng.choice(R_ATOMS)
    sub = lambda: r_expr(rng, depth + 1)
    if r < 0.5:
        return f"({sub()} {rng.choice(R_OPS)} {sub()})"
    if r < 0.65:
        return f"({sub()} | {rng.choice(R_FILTERS)})"
    if r < 0.75:
        neg = "not " if rng.random() < 0.3 else ""
        return f"({sub()} is {neg}{rng.choice(R_TESTS)})"
    if r < 0.85:
        return f"({sub()} if {sub()} else {sub()})"
    if r < 0.92:
        return f"(not {sub()})"
    return f"[{sub()}, {sub()}]"


def r_stmt(rng, depth=0):
    r = rng.random()
    w = rng.choice(R_SPACE)
    a, b = rng.choice(["", "-"]), rng.choice(["", "-"])
    if depth > 2 or r < 0.4:
        return f"{w}{{{{{a} {r_expr(rng)} {b}}}}}{rng.choice(R_SPACE)}{rng.choice(['', 't', ' t '])}"
    if r < 0.6:
        return f"{w}{{%{a} if {r_expr(rng)} {b}%}}{r_body(rng, depth + 1)}{{% else %}}{r_body(rng, depth + 1)}{{% endif %}}"
    if r < 0.8:
        seq = rng.choice(["l", "s", "d", "ms", "range(3)", "u", "[]", "d.items()", "l if x else s"])
        return (f"{w}{{%{a} for it in {seq} {b}%}}{rng.choice(R_SPACE)}{{{{ {rng.choice(R_LOOP)} }}}}{{{{ it }}}}"
                f"{r_body(rng, depth + 1)}{{% else %}}E{{% endfor %}}")
    if r < 0.85:
        return f"{w}{{% set v = {r_expr(rng)} %}}{{{{ v }}}}"
    if r < 0.88:
        return (f"{w}{{% set ns = namespace(n=0, t='') %}}{{% for it in l if it != x %}}{{% set ns.n = ns.n + it %}}"
                f"{{% set ns.t = ns.t ~ {rng.choice(R_LOOP)} %}}{{% endfor %}}{{{{ ns.n }}}}/{{{{ ns.t }}}}")
    if r < 0.91:
        return f"{w}{{%{a} for k, val in d.items() {b}%}}{{{{ k }}}}={{{{ val }}}}{{{{ {rng.choice(R_LOOP)} }}}}{{%{a} endfor {b}%}}"
    if r < 0.94:
        return (f"{w}{{% macro mac(p, q='Q') %}}<{{{{ p }}}}|{{{{ q }}}}>{{% endmacro %}}"
                f"{{{{ mac({r_expr(rng)}) }}}}{{{{ mac(1, q={r_expr(rng)}) }}}}")
    if r < 0.96:
        return f"{w}{{% set blk %}}{r_body(rng, depth + 1)}{{% endset %}}[{{{{ blk }}}}]"
    return f"{w}{{# c #}}{rng.choice(R_SPACE)}"


def r_body(rng, depth):
    return "".join(r_stmt(rng, depth) for _ in range(rng.randint(1, 3)))


def random_cases(n=400, seed=7):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        src = r_body(rng, 0)
        variables = copy.deepcopy(R_VARS)
        case = {"name": f"random{len(out)}", "template": src, "vars": copy.deepcopy(R_VARS)}
        try:
            t = chat_template_utils._compile_jinja_template(src)
        except Exception as e:  # noqa: BLE001
            case.update(error=type(e).__name__, message=str(e), phase="parse")
            out.append(case)
            continue
        try:
            case["output"] = t.render(**variables)
        except Exception as e:  # noqa: BLE001
            case.update(error=type(e).__name__, message=str(e), phase="render")
        if " at 0x" in case.get("output", ""):
            continue
        out.append(case)
    return out


def strftime_cases():
    when = datetime.datetime(2024, 7, 6, 15, 4, 5)
    fmts = ["%d %b %Y", "%Y-%m-%d", "%B %d, %Y", "%A %a %H:%M:%S %I %p %j %y %%", "%e|%F|%T"]
    return {"when": when.isoformat(), "cases": [{"format": f, "output": when.strftime(f)} for f in fmts]}


def write(name, data):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    versions = {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__, "jinja2": jinja2.__version__}
    write("chat_fixtures.json", {"versions": versions, "cases": chat_fixtures()})
    write("jinja_cases.json", {"versions": versions, "cases": jinja_cases()})
    write("random_cases.json", {"versions": versions, "cases": random_cases()})
    write("strftime_cases.json", strftime_cases())


if __name__ == "__main__":
    main()
