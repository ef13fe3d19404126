#!/usr/bin/env python3
# gen-man.py -- the section-3 man pages, one per public function and the
# sockkit(3) overview, written from Doxygen's XML of include/sockkit.h.
"""Generate libsockkit's section-3 man pages from Doxygen's XML output.

Each SK_API function of the header gets a page named after it (NAME,
LIBRARY, SYNOPSIS, DESCRIPTION, RETURN VALUE, ERRORS, NOTES, SEE ALSO), and
sockkit.3.in becomes sockkit(3), with one section per @defgroup of the header
(its text, types, constants and functions) in place of @TOPICS@.

The pages are generated, so they cannot drift from the header; the script
fails rather than write a page it cannot vouch for: a function of the header
missing from the XML (or the reverse), a prototype that differs from the
header's, an SK_E code of a @return that it cannot place under ERRORS, or
markup it does not know. Standard library only.

Usage: gen-man.py --xml DIR --header sockkit.h --template sockkit.3.in
                  --version X.Y.Z --out DIR
"""

import argparse
import copy
import datetime
import os
import re
import sys
import xml.etree.ElementTree as ET

SOURCE = "libsockkit"
# Identifiers are long and must read as typed: no hyphenation, ragged right.
LAYOUT = ".nh\n.ad l\n"
MANUAL = "libsockkit Manual"
# The example programs' pages, for the SEE ALSO of sockkit(3).
TOOLS = ["sk-cmd-client", "sk-cmd-server", "sk-echo-client", "sk-echo-server"]


class Error(Exception):
    """A reason not to write the pages."""


# ---- the header: what is exported, and with which prototype --------------


def normalize(decl):
    """A C declaration with attributes, SK_API and layout taken out."""
    decl = re.sub(r"__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)", "", decl)
    decl = re.sub(r"\bSK_API\b", "", decl)
    decl = re.sub(r"\s+", " ", decl).strip().rstrip(";").strip()
    decl = re.sub(r"\s*([(),])\s*", r"\1", decl)
    decl = re.sub(r"\*\s+", "*", decl)
    return decl.replace(",", ", ")


def header_functions(path):
    """{name: normalized prototype} of every SK_API declaration, in order."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    found = {}
    for m in re.finditer(r"^SK_API\b[^;]*;", text, flags=re.M):
        decl = normalize(m.group(0))
        name = re.search(r"(\w+)\(", decl).group(1)
        found[name] = decl
    if not found:
        raise Error(f"{path}: no SK_API declaration found")
    return found


# ---- the XML ---------------------------------------------------------------


class Member:
    """A documented member of the header: function, enum, typedef or define."""

    def __init__(self, elem, group):
        self.elem = elem
        self.kind = elem.get("kind")
        self.name = elem.findtext("name")
        self.group = group
        self.line = int(elem.find("location").get("line"))


class Group:
    """A @defgroup: title, description and members in header order."""

    def __init__(self, elem):
        self.name = elem.findtext("compoundname")
        self.title = elem.findtext("title")
        self.description = elem.find("detaileddescription")
        self.members = []


def load(xml_dir):
    """The groups in header order, and {refid: (kind, name)} for links."""
    index = ET.parse(os.path.join(xml_dir, "index.xml")).getroot()
    groups, refs = [], {}
    for compound in index.findall("compound"):
        if compound.get("kind") != "group":
            continue
        path = os.path.join(xml_dir, compound.get("refid") + ".xml")
        elem = ET.parse(path).getroot().find("compounddef")
        group = Group(elem)
        for m in elem.iter("memberdef"):
            member = Member(m, group)
            group.members.append(member)
            refs[m.get("id")] = (member.kind, member.name)
            for v in m.findall("enumvalue"):
                refs[v.get("id")] = ("enumvalue", v.findtext("name"))
        group.members.sort(key=lambda member: member.line)
        groups.append(group)
    return groups, refs


# ---- groff text ----------------------------------------------------------


def _escape(text):
    """Backslashes kept (so that the C string "\\n" reads as such) and
    anything outside ASCII as a named character."""
    text = text.replace("\\", "\\e")
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)


def escape(text):
    """Prose made safe for groff: as _escape(), with arrows and the minus
    signs of numbers."""
    text = _escape(text).replace("->", "\\(->")
    return re.sub(r"(?<![\w-])-(?=\d)", r"\\-", text)


def escape_code(text):
    """Code: as _escape(), and every hyphen a minus sign, as typed."""
    return _escape(text).replace("-", "\\-")


def wrap(text, width=78):
    """Lines of at most `width` columns, none taken for a request; forced
    breaks (.br) stay on lines of their own."""
    out = []
    for part in text.split("\n.br\n"):
        lines, line = [], ""
        for word in part.split():
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        if line:
            lines.append(line)
        # No line may start a request; "e.g." ending a line is no sentence end.
        lines = ["\\&" + l if l[0] in ".'" else l for l in lines]
        lines = [l + "\\&" if re.search(r"\b(e\.g|i\.e)\.$", l) else l for l in lines]
        out.append("\n".join(lines))
    return "\n.br\n".join(p for p in out if p)


class Renderer:
    """Turns Doxygen markup into groff for the page of `member` (None for
    sockkit(3)): its parameters in italics, links to other pages as name(3)."""

    INLINE = {"ref", "computeroutput", "emphasis", "bold", "linebreak", "ulink"}

    def __init__(self, refs, functions, member=None):
        self.refs = refs
        self.functions = functions
        self.self_name = member.name if member else None
        self.params = set()
        if member is not None:
            for p in member.elem.findall("param"):
                if p.findtext("declname"):
                    self.params.add(p.findtext("declname"))
        self.linked = []  # functions linked from the text, in order

    # Inline markup, as one string of groff text.
    def inline(self, elem, plain=False):
        out = [self._text(elem.text, plain)]
        for child in elem:
            out.append(self._node(child, plain))
            out.append(self._text(child.tail, plain))
        return "".join(out)

    def _text(self, text, plain):
        text = re.sub(r"\s+", " ", text or "")
        return text if plain else escape(text)

    def _node(self, child, plain):
        tag = child.tag
        if tag not in self.INLINE:
            raise Error(f"unknown markup <{tag}> in running text")
        content = "".join(child.itertext())
        if plain:
            return "" if tag == "linebreak" else content
        if tag == "ref":
            return self._ref(child, content)
        if tag == "computeroutput":
            font = "I" if content in self.params else "B"
            return f"\\f{font}{escape_code(content)}\\fP"
        if tag == "emphasis":
            return f"\\fI{self.inline(child)}\\fP"
        if tag == "bold":
            return f"\\fB{self.inline(child)}\\fP"
        if tag == "linebreak":
            return "\n.br\n"
        return f"{self.inline(child)} \\fI{escape_code(child.get('url'))}\\fP"  # ulink

    def _ref(self, child, content):
        kind, name = self.refs.get(child.get("refid"), (None, content))
        if kind == "function" and name in self.functions:
            if name == self.self_name:
                return f"\\fB{escape_code(name)}\\fP()"
            if name not in self.linked:
                self.linked.append(name)
            return f"\\fB{escape_code(name)}\\fP(3)"
        if kind in ("typedef", "enum"):
            return f"\\fI{escape_code(content)}\\fP"
        return f"\\fB{escape_code(content)}\\fP"

    # Block markup: paragraphs, with @param, @return and @note set aside.
    def blocks(self, desc):
        """(paragraphs, params, returns, notes) of a description element;
        paragraphs as groff source, the rest as lists of <para> elements
        (params as (name, [para...]) pairs)."""
        paras, params, returns, notes = [], [], [], []
        for para in desc.findall("para") if desc is not None else []:
            text = [self._text(para.text, False)]
            for child in para:
                if child.tag == "parameterlist":
                    for item in child.findall("parameteritem"):
                        name = item.findtext("parameternamelist/parametername")
                        params.append((name, item.findall("parameterdescription/para")))
                elif child.tag == "simplesect" and child.get("kind") == "return":
                    returns.extend(child.findall("para"))
                elif child.tag == "simplesect" and child.get("kind") == "note":
                    notes.extend(child.findall("para"))
                elif child.tag == "simplesect" and child.get("kind") == "since":
                    paras.append(wrap("".join(text)))
                    text = []
                    version = " ".join(self.inline(p) for p in child.findall("para")).strip()
                    paras.append(wrap(f"Since libsockkit {version}."))
                elif child.tag == "itemizedlist":
                    paras.append(wrap("".join(text)))
                    text = []
                    items = [wrap(self.inline(li.find("para"))) for li in child.findall("listitem")]
                    paras.append("\n".join(f".IP \\(bu 2\n{i}" for i in items))
                elif child.tag == "simplesect":
                    raise Error(f"unknown section @{child.get('kind')}")
                else:
                    text.append(self._node(child, False))
                text.append(self._text(child.tail, False))
            body = wrap("".join(text))
            if body:
                paras.append(body)
        return [p for p in paras if p], params, returns, notes

    def para(self, elem):
        return wrap(self.inline(elem))


# ---- what a function's page says ------------------------------------------


def summary(member):
    """The first sentence of a description, for the NAME line: plain text,
    no parenthetical remarks, no period, first letter in lower case."""
    first = member.elem.find("detaileddescription/para")
    if first is None:
        raise Error(f"{member.name}: no description")
    text = re.sub(r"\s+", " ", Renderer({}, set()).inline(first, plain=True)).strip()
    text = re.split(r"(?<!e\.g)(?<!i\.e)\.(?:\s+(?=[A-Z]|sk_)|$)", text, maxsplit=1)[0]
    text = re.split(r"[:;]\s", text, maxsplit=1)[0]
    text = re.sub(r"\s*\([^()]+\)", "", text).strip().rstrip(".")
    word = text.split()[0]
    if not (len(word) > 1 and word[:2].isupper()):  # "TCP ..." stays as it is
        text = text[0].lower() + text[1:]
    return text


def prototype(member):
    """The declaration as segments [(text, italic)], and as plain C."""
    ret = "".join(member.elem.find("type").itertext()).strip()
    segs = [(ret + ("" if ret.endswith("*") else " ") + member.name + "(", False)]
    for i, p in enumerate(member.elem.findall("param")):
        ptype = "".join(p.find("type").itertext()).strip()
        pname = p.findtext("declname")
        sep = ", " if i else ""
        if pname:
            segs.append((sep + ptype + ("" if ptype.endswith("*") else " "), False))
            segs.append((pname, True))
        else:
            segs.append((sep + ptype, False))
    segs.append((");", False))
    return segs, "".join(t for t, _ in segs)


def synopsis(segs, width=78):
    """.BI lines of the prototype, broken between parameters and aligned
    after the opening parenthesis, as man-pages(7) does."""
    indent = " " * len(segs[0][0])
    params, cur = [], []
    for text, italic in segs[1:-1]:
        if not italic and text.startswith(", "):
            params.append(cur)
            cur = [(text[2:], False)]
        else:
            cur.append((text, italic))
    params.append(cur)
    lines, line, col = [], [segs[0]], len(segs[0][0])
    for i, param in enumerate(params):
        size = sum(len(t) for t, _ in param) + 2
        if i and col + size > width:
            line.append((",", False))
            lines.append(line)
            line, col = [(indent, False)], len(indent)
        elif i:
            line.append((", ", False))
        line.extend(param)
        col += size
    line.append(segs[-1])
    lines.append(line)
    out = []
    for line in lines:
        merged = []  # alternate roman-bold and italic, starting bold
        for text, italic in line:
            if merged and merged[-1][1] == italic:
                merged[-1] = (merged[-1][0] + text, italic)
            else:
                if not merged and italic:
                    merged.append(("", False))
                merged.append((text, italic))
        args = [f'"{escape_code(t)}"' if (" " in t or not t) else escape_code(t) for t, _ in merged]
        out.append(".BI " + " ".join(args))
    return "\n".join(out)


def split_items(para):
    """The @return paragraph cut at top-level semicolons into lists of
    nodes: strings and elements."""
    nodes = [para.text or ""]
    for child in para:
        nodes.append(child)
        nodes.append(child.tail or "")
    items, cur, depth = [], [], 0
    for node in nodes:
        if not isinstance(node, str):
            cur.append(node)
            continue
        start = 0
        for i, c in enumerate(node):
            depth += (c == "(") - (c == ")")
            if c == ";" and depth == 0:
                cur.append(node[start:i])
                items.append(cur)
                cur, start = [], i + 1
        cur.append(node[start:])
    items.append(cur)
    return items


def status_name(node, ctx):
    """The status code (SK_OK, SK_E...) a node links to, or None."""
    if isinstance(node, str) or node.tag != "ref":
        return None
    name = ctx["refs"].get(node.get("refid"), ("", ""))[1]
    return name if name in ctx["status_docs"] else None


def leading_codes(item, ctx):
    """Split an item into the status codes it starts with ("SK_EREAD or
    SK_EWRITE ...") and the rest."""
    codes, i = [], 0
    while i < len(item):
        node = item[i]
        if isinstance(node, str) and re.fullmatch(r"\s*(,|,? or|and)?\s*", node):
            i += 1
        elif status_name(node, ctx):
            codes.append(status_name(node, ctx))
            i += 1
        else:
            break
    return codes, item[i:]


def as_element(nodes):
    """A <para> holding `nodes`, to render with Renderer.inline()."""
    para = ET.Element("para")
    last = None
    for node in nodes:
        if isinstance(node, str):
            if last is None:
                para.text = (para.text or "") + node
            else:
                last.tail = (last.tail or "") + node
        else:
            last = copy.deepcopy(node)
            last.tail = None
            para.append(last)
    return para


def sentence(r, nodes, fallback=""):
    """Nodes as a sentence: capitalized, ending in a period."""
    text = r.inline(as_element(nodes)).strip().rstrip(".,").strip()
    if not text:
        return fallback
    if text[0].islower():
        text = text[0].upper() + text[1:]
    return text + "."


def returns_and_errors(r, member, returns, ctx):
    """(RETURN VALUE text, ERRORS .TP entries) from the @return paragraphs."""
    name = f"\\fB{escape_code(member.name)}\\fP()"
    if not returns:
        return f"{name} returns no value.", []
    para = returns[0]
    nodes = split_items(para)
    # "SK_OK, or SK_EINVAL for ...": the error is an item of its own.
    first = nodes[0]
    for i in range(2, len(first)):
        before = first[i - 1]
        if status_name(first[i], ctx) and isinstance(before, str) and \
                re.fullmatch(r",?\s*or\s*", before) and status_name(first[i - 2], ctx) == "SK_OK":
            nodes[:1] = [first[: i - 1], first[i:]]
            break
    codes, rest = leading_codes(nodes[0], ctx)
    if codes != ["SK_OK"]:
        text = r.inline(para).strip()
        return wrap(f"{name} returns {text}"), []
    items = nodes[1:]
    on_success = r.inline(as_element(rest)).strip().rstrip(".")
    ok = "\\fBSK_OK\\fP (0)" + ("" if on_success[:1] in ("", ",") else " ") + on_success
    text = (f"{name} returns {ok}; on failure, a negative status code listed under "
            "ERRORS, which \\fBsk_strerror\\fP(3) turns into a message.")
    errors, named = [], {"SK_OK"}
    for item in items:
        names, body = leading_codes(item, ctx)
        named.update(names)
        if names:
            fallback = ctx["status_docs"][names[0]] if len(names) == 1 else ""
            tag = ", ".join(f"\\fB{n}\\fP" for n in names)
            errors.append((tag, wrap(sentence(r, body, fallback))))
        elif "".join(n if isinstance(n, str) else "x" for n in item).strip():
            errors.append((None, wrap(sentence(r, item))))
    mentioned = {status_name(n, ctx) for n in para.iter("ref")} - {None}
    missing = mentioned - named
    if missing:
        raise Error(f"{member.name}: @return names {', '.join(sorted(missing))} "
                    "but not at the start of an item; cannot list it under ERRORS")
    return wrap(text), errors


def title(name, section, date, version):
    return (f'.TH {name.upper()} {section} {date} "{SOURCE} {version}" "{MANUAL}"\n'
            f".\\\" Generated by docs/man/gen-man.py from include/sockkit.h; do not edit.\n"
            + LAYOUT)


def see_also(names):
    lines = [f".BR {escape_code(n)} ({s})" for n, s in names]
    return ",\n".join(lines)


def function_page(member, ctx):
    r = Renderer(ctx["refs"], ctx["functions"], member)
    paras, params, returns, notes = r.blocks(member.elem.find("detaileddescription"))
    segs, _ = prototype(member)
    out = [title(member.name, 3, ctx["date"], ctx["version"])]
    out.append(f".SH NAME\n{escape_code(member.name)} \\- {escape(summary(member))}\n")
    out.append(".SH LIBRARY\nlibsockkit (\\fI\\-lsockkit\\fP;\n"
               "\\fIpkg\\-config \\-\\-cflags \\-\\-libs sockkit\\fP)\n")
    out.append(".SH SYNOPSIS\n.nf\n.B #include <sockkit.h>\n.PP\n" + synopsis(segs) + "\n.fi\n")
    out.append(".SH DESCRIPTION\n" + "\n.PP\n".join(paras) + "\n")
    if params:
        out.append(".PP\nThe arguments:\n")
        for name, paras in params:
            out.append(f".TP\n.I {escape_code(name)}\n" + "\n.IP\n".join(map(r.para, paras)) + "\n")
    ret, errors = returns_and_errors(r, member, returns, ctx)
    out.append(f".SH RETURN VALUE\n{ret}\n")
    if len(returns) > 1:
        out.extend(f".PP\n{r.para(p)}\n" for p in returns[1:])
    if errors:
        out.append(".SH ERRORS\n")
        for tag, body in errors:
            out.append(f".TP\n{tag}\n{body}\n" if tag else f".PP\n{body}\n")
    if notes:
        out.append(".SH NOTES\n" + "\n.PP\n".join(r.para(n) for n in notes) + "\n")
    group = [m for m in member.group.members if m.kind == "function" and m.name != member.name]
    prefix = "_".join(member.name.split("_")[:3]) + "_"
    siblings = [m.name for m in group if m.name.startswith(prefix)] or [m.name for m in group]
    related = siblings + [n for n in r.linked if n not in siblings]
    out.append(".SH SEE ALSO\n" + see_also([("sockkit", 3)] + [(n, 3) for n in related]) + "\n")
    return "".join(out)


# ---- sockkit(3) ------------------------------------------------------------


def definition(member):
    """A typedef as C: "typedef const char *(*sk_service)(...);"."""
    text = member.elem.findtext("definition")
    text = re.sub(r"(\w)\(\*\s*", r"\1 (*", text)
    text = re.sub(r"\(\*\s+", "(*", text)
    text = re.sub(r"\)\s+\(", ")(", text)
    return text + ";"


def topic(group, ctx):
    """One section of sockkit(3): a @defgroup with its text, constants,
    types and functions."""
    r = Renderer(ctx["refs"], ctx["functions"])
    paras, _, _, _ = r.blocks(group.description)
    out = [f'.SH "{group.title.upper()}"\n', "\n.PP\n".join(paras) + "\n"]
    functions = []
    for m in group.members:
        if m.kind == "function":
            functions.append(m)
            continue
        if m.kind == "typedef" and m.elem.findtext("definition").startswith("typedef enum"):
            continue  # shown with its enum
        mr = Renderer(ctx["refs"], ctx["functions"])
        mparas, mparams, mreturns, mnotes = mr.blocks(m.elem.find("detaileddescription"))
        if m.kind == "enum":
            out.append(f".PP\n\\fIenum {escape_code(m.name)}\\fP:\n" + "\n.PP\n".join(mparas) + "\n")
            for v in m.elem.findall("enumvalue"):
                value = (v.findtext("initializer") or "").lstrip("= ").strip()
                vparas, _, _, _ = r.blocks(v.find("detaileddescription"))
                brief = r.blocks(v.find("briefdescription"))[0]
                tag = f"\\fB{escape_code(v.findtext('name'))}\\fP" + (
                    f" ({escape_code(value)})" if value else "")
                out.append(f".TP\n{tag}\n" + "\n.br\n".join(brief + vparas) + "\n")
            continue
        if m.kind == "define":
            value = m.elem.findtext("initializer") or ""
            shown = re.fullmatch(r'-?\d+|"[^"]*"', value)
            tag = f"\\fB{escape_code(m.name)}\\fP" + (f" ({escape_code(value)})" if shown else "")
        else:
            tag = f"\\fB{escape_code(definition(m))}\\fP"
        body = list(mparas)
        for name, paras in mparams:
            body.append(f"\\fI{escape_code(name)}\\fP: " + "\n.IP\n".join(map(mr.para, paras)))
        for para in mreturns:
            body.append(f"Returns {mr.para(para)}")
        body.extend(mr.para(n) for n in mnotes)
        out.append(f".TP\n{tag}\n" + "\n.IP\n".join(body) + "\n")
    if functions:
        out.append(".PP\nFunctions:\n")
        for m in functions:
            out.append(f".TP\n\\fB{escape_code(m.name)}\\fP(3)\n{escape(summary(m))}\n")
    return "".join(out)


def overview(template, groups, ctx):
    with open(template, encoding="utf-8") as f:
        text = f.read()
    for key in ("@TOPICS@", "@SEE_ALSO@", "@VERSION@", "@DATE@"):
        if key not in text:
            raise Error(f"{template}: no {key}")
    pages = [("pkg-config", 1)] + [(t, 1) for t in TOOLS] + [(n, 3) for n in sorted(ctx["functions"])]
    text = text.replace("@TOPICS@\n", "".join(topic(g, ctx) for g in groups))
    text = text.replace("@SEE_ALSO@\n", see_also(pages) + "\n")
    return text.replace("@VERSION@", ctx["version"]).replace("@DATE@", ctx["date"])


# ---- main ------------------------------------------------------------------


def page_date(header):
    """SOURCE_DATE_EPOCH when set (reproducible builds), else the header's
    modification date."""
    stamp = os.environ.get("SOURCE_DATE_EPOCH")
    seconds = int(stamp) if stamp else os.stat(header).st_mtime
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d")


def generate(args):
    api = header_functions(args.header)
    groups, refs = load(args.xml)
    members = {m.name: m for g in groups for m in g.members if m.kind == "function"}
    missing, extra = sorted(set(api) - set(members)), sorted(set(members) - set(api))
    if missing or extra:
        raise Error("the XML and the header disagree: "
                    f"not in the XML: {missing or 'none'}; not SK_API: {extra or 'none'}")
    for name, decl in api.items():
        _, c = prototype(members[name])
        if normalize(c) != decl:
            raise Error(f"{name}: prototype from the XML\n  {normalize(c)}\n"
                        f"differs from the header's\n  {decl}")
    status_docs = {}
    for g in groups:
        for m in g.members:
            for v in m.elem.findall("enumvalue") if m.name == "sk_status" else []:
                # The text alone: a code's @since belongs in sockkit(3), not
                # in each page's ERRORS.
                paras = Renderer(refs, set(api)).blocks(v.find("detaileddescription"))[0]
                status_docs[v.findtext("name")] = paras[0]
    ctx = {"refs": refs, "functions": set(api), "status_docs": status_docs,
           "version": args.version, "date": page_date(args.header)}

    pages = {f"{name}.3": function_page(members[name], ctx) for name in api}
    pages["sockkit.3"] = overview(args.template, groups, ctx)
    os.makedirs(args.out, exist_ok=True)
    # No page of an earlier run (or of Doxygen's own man output) survives;
    # sockkit.3, the build's stamp, is written last.
    for old in os.listdir(args.out):
        if old.endswith(".3"):
            os.remove(os.path.join(args.out, old))
    for name in sorted(pages, key=lambda n: n == "sockkit.3"):
        with open(os.path.join(args.out, name), "w", encoding="ascii") as f:
            f.write(pages[name])
    return len(pages)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xml", required=True, help="Doxygen's XML output directory")
    parser.add_argument("--header", required=True, help="include/sockkit.h")
    parser.add_argument("--template", required=True, help="docs/man/sockkit.3.in")
    parser.add_argument("--version", required=True, help="the project version")
    parser.add_argument("--out", required=True, help="where the .3 pages go")
    args = parser.parse_args()
    try:
        count = generate(args)
    except (Error, OSError, ET.ParseError) as e:
        print(f"gen-man.py: {e}", file=sys.stderr)
        return 1
    print(f"gen-man.py: {count} pages in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
