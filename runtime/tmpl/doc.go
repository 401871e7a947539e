// Package tmpl renders chat templates: the subset of Jinja2 that the
// chat_template of a Hugging Face tokenizer_config.json uses, with the
// environment transformers' apply_chat_template renders it in
// (trim_blocks, lstrip_blocks, the tojson filter of Python's json.dumps,
// raise_exception, strftime_now, namespace), and the chat API on top of it
// (Chat, LoadChat, Builtin; Chat.RenderSpans for the ranges that
// {% generation %} blocks render, transformers' assistant masks). It imports only the standard library, as all
// of lorac's runtime does.
//
// The subset: statements if/elif/else, for (loop variables, else, tuple
// unpacking, an if filter, break/continue), set (also of namespace
// attributes and as a block), macro and call, generation, raw; comments and
// whitespace control; expressions with Python's literals, operators,
// attribute and item access, slices, calls, conditional expressions, and
// the filters, tests and str, dict and list methods that templates use
// (docs/design.md, section 5, lists them). Values follow Python: missing variables
// and attributes are undefined (empty, false, an error on most operations),
// dicts keep their insertion order.
package tmpl
