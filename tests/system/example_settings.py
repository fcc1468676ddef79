#!/usr/bin/python3
"""Extract the extension settings from the Bicep and PowerShell examples as JSON, so that
tests/system/test_examples.sh can give them to `kvvm check-settings` like the JSON examples.

  example_settings.py bicep FILE PUBLISHER TYPE OUT   settings of every extension resource
                                                      of that publisher and type: OUT.N.json
  example_settings.py ps1 FILE VARIABLE OUT           the hashtable literal $VARIABLE = @{...}

Each reads only the subset of its language the examples use, and fails on anything else.
Values that are expressions (identity.properties.clientId, "$Identity.ClientId", an
interpolated URL) are replaced by a placeholder chosen by key, as the ARM extraction does; a
key without a placeholder is an error, so a new expression cannot slip through unchecked."""
import json
import re
import sys

PLACE = {"msiClientId": "11111111-2222-3333-4444-555555555555",
         "url": "https://placeholder.vault.azure.net/secrets/placeholder"}


class Expr:
    """A value the language computes at deployment time."""

    def __init__(self, text):
        self.text = text


def resolve(v, key=None):
    if isinstance(v, dict):
        return {k: resolve(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [resolve(x, key) for x in v]
    if isinstance(v, Expr):
        if key not in PLACE:
            sys.exit("expression %r under %r: no placeholder for it" % (v.text, key))
        return PLACE[key]
    return v


class Parser:
    """A cursor over the text with the helpers both languages share."""

    def __init__(self, text, comment):
        self.s, self.i, self.comment = text, 0, comment

    def skip(self, newlines=True):
        while self.i < len(self.s):
            c = self.s[self.i]
            if self.s.startswith(self.comment, self.i):
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
            elif c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            else:
                return

    def peek(self, tok):
        self.skip()
        return self.s.startswith(tok, self.i)

    def expect(self, tok):
        if not self.peek(tok):
            sys.exit("expected %r at %r" % (tok, self.s[self.i:self.i + 40]))
        self.i += len(tok)

    def quoted(self, q):
        """A string in quotes q; returns (text, interpolated?)."""
        self.expect(q)
        end = self.s.index(q, self.i)
        text = self.s[self.i:end]
        self.i = end + 1
        return text, ("${" in text if q == "'" else "$" in text)

    def rest_of_expr(self, stops):
        """An expression up to a stop character at bracket depth 0."""
        start, depth = self.i, 0
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in "([{":
                depth += 1
            elif c in ")]}" and depth:
                depth -= 1
            elif depth == 0 and c in stops:
                break
            self.i += 1
        return Expr(self.s[start:self.i].strip())


class Bicep(Parser):
    def __init__(self, text):
        super().__init__(text, "//")

    def value(self):
        self.skip()
        if self.peek("{"):
            return self.obj()
        if self.peek("["):
            return self.arr()
        if self.peek("'"):
            text, interp = self.quoted("'")
            return Expr(text) if interp else text
        m = re.match(r"(true|false|null|-?\d+)\b", self.s[self.i:])
        if m:
            self.i += len(m.group(0))
            return json.loads(m.group(0))
        return self.rest_of_expr("\n}]")

    def obj(self):
        self.expect("{")
        out = {}
        while not self.peek("}"):
            m = re.match(r"'?([A-Za-z_][\w]*)'?\s*:", self.s[self.i:])
            if not m:
                sys.exit("expected a key at %r" % self.s[self.i:self.i + 40])
            self.i += len(m.group(0))
            out[m.group(1)] = self.value()
        self.expect("}")
        return out

    def arr(self):
        self.expect("[")
        out = []
        while not self.peek("]"):
            out.append(self.value())
        self.expect("]")
        return out

    def resources(self):
        """Every `resource NAME 'TYPE@VERSION' = {...}` body; other statements are skipped."""
        for m in re.finditer(r"^resource\s+\w+\s+'[^']*'\s*(existing\s*)?=\s*", self.s, re.M):
            self.i = m.end()
            yield self.obj()


class Ps1(Parser):
    def __init__(self, text):
        super().__init__(text, "#")
        # $Name = 'literal' assignments, for "...$Name..." interpolation.
        self.vars = dict(re.findall(r"^\$(\w+)\s*=\s*'([^']*)'\s*$", text, re.M))

    def interpolate(self, text):
        def one(m):
            if m.group(1) not in self.vars:
                raise KeyError(m.group(1))
            return self.vars[m.group(1)]
        try:
            # In a double-quoted string PowerShell expands $Name alone: ".vault" after it
            # stays text (member access would need $(...)).
            return re.sub(r"\$(\w+)", one, text)
        except KeyError:
            return Expr(text)

    def value(self):
        self.skip()
        if self.peek("@{"):
            return self.table()
        if self.peek("@("):
            return self.array()
        if self.peek("'"):
            return self.quoted("'")[0]
        if self.peek('"'):
            text, interp = self.quoted('"')
            return self.interpolate(text) if interp else text
        m = re.match(r"\$(true|false|null)\b|-?\d+\b", self.s[self.i:], re.I)
        if m:
            self.i += len(m.group(0))
            return {"$true": True, "$false": False, "$null": None}.get(m.group(0).lower(),
                                                                       None) if m.group(1) \
                else int(m.group(0))
        return self.rest_of_expr("\n;,)}")

    def table(self):
        self.expect("@{")
        out = {}
        while True:
            self.skip()
            if self.peek(";"):
                self.i += 1
                continue
            if self.peek("}"):
                break
            m = re.match(r"([A-Za-z_]\w*)\s*=", self.s[self.i:])
            if not m:
                sys.exit("expected a key at %r" % self.s[self.i:self.i + 40])
            self.i += len(m.group(0))
            out[m.group(1)] = self.value()
        self.expect("}")
        return out

    def array(self):
        self.expect("@(")
        out = []
        while True:
            self.skip()
            if self.peek(","):
                self.i += 1
                continue
            if self.peek(")"):
                break
            out.append(self.value())
        self.expect(")")
        return out


def main(argv):
    kind, path = argv[1], argv[2]
    text = open(path).read()
    if kind == "bicep":
        pub, typ, out = argv[3:6]
        found = [r["properties"] for r in Bicep(text).resources()
                 if isinstance(r.get("properties"), dict)
                 and r["properties"].get("publisher") == pub and r["properties"].get("type") == typ]
        if not found:
            sys.exit("no extension resource with publisher %s and type %s" % (pub, typ))
        for n, props in enumerate(found):
            json.dump(resolve(props["settings"]), open("%s.%d.json" % (out, n), "w"), indent=1)
        print("extracted %d" % len(found))
    elif kind == "ps1":
        var, out = argv[3:5]
        m = re.search(r"^\$%s\s*=\s*(?=@\{)" % re.escape(var), text, re.M)
        if not m:
            sys.exit("no $%s = @{...} in %s" % (var, path))
        p = Ps1(text)
        p.i = m.end()
        json.dump(resolve(p.value()), open(out + ".0.json", "w"), indent=1)
        print("extracted 1")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
