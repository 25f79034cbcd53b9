"""Shell as the shell reads it: tree-sitter-bash cuts a code block into whole statements and each
statement into the simple commands it runs (pipeline segments, `&&`/`;` parts, subshells, command
substitutions, control-flow bodies), with their words and redirections.

tree-sitter-bash is a complete bash grammar that recovers from errors, so a runbook's half-shell
(`kubectl logs <pod-name>`, `WHERE pid = [PID]`) still yields a tree; placeholders are masked
before parsing so that `<pod-name>` is not read as two redirections.
"""

from dataclasses import dataclass, field
from functools import cache

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

from runbooks.placeholders import mask


@cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bash.language()))


_CONTROL = {
    "if_statement",
    "for_statement",
    "c_style_for_statement",
    "while_statement",
    "case_statement",
    "function_definition",
}


@dataclass
class Redirect:
    operator: str
    target: str


@dataclass
class Command:
    """One simple command: its words (quotes removed, expansions kept as written) and redirections."""

    words: list[str]
    redirects: list[Redirect] = field(default_factory=list)
    piped_into: bool = False  # reads the output of the segment before it

    @property
    def program(self) -> str:
        return self.words[0].rsplit("/", 1)[-1] if self.words else ""


@dataclass
class Statement:
    text: str  # as written (placeholders unmasked), continuation lines and heredocs included
    commands: list[Command]
    control: bool  # if/for/while/case/function: a script, kept and judged whole
    comment: str = ""  # a comment line standing alone (no commands)
    blank_before: bool = False  # a blank line separates it from the statement before
    error: bool = False  # the grammar could not read all of it


def _word(node: Node, source: bytes) -> str:
    text = source[node.start_byte : node.end_byte].decode("utf-8", "replace")
    if node.type == "raw_string" and len(text) >= 2:
        return text[1:-1]
    if node.type == "string" and len(text) >= 2:
        return text[1:-1]
    if node.type == "ansi_c_string" and len(text) >= 3:
        return text[2:-1]
    if node.type == "concatenation":
        return "".join(_word(c, source) for c in node.children)
    return text


def _commands(node: Node, source: bytes, out: list[Command], *, piped: bool = False) -> None:
    if node.type == "command":
        words, redirects = [], []
        for child in node.children:
            if child.type == "command_name":
                words.append(_word(child.children[0] if child.children else child, source))
            elif child.type in {"variable_assignment", "comment"}:
                continue
            elif child.type in {"file_redirect", "heredoc_redirect", "herestring_redirect"}:
                redirects.append(_redirect(child, source))
            else:
                words.append(_word(child, source))
        out.append(Command(words=words, redirects=redirects, piped_into=piped))
        # $(...) and `...` inside the words run too.
        for child in node.children:
            _nested(child, source, out)
        return
    if node.type == "redirected_statement":
        before = len(out)
        body = node.child_by_field_name("body")
        if body is not None:
            _commands(body, source, out, piped=piped)
        redirects = [
            _redirect(c, source)
            for c in node.children
            if c.type in {"file_redirect", "heredoc_redirect", "herestring_redirect"}
        ]
        if len(out) == before:
            # `> file` or `: > file` alone: a command with no words that truncates its target.
            out.append(Command(words=[], redirects=redirects, piped_into=piped))
        else:
            out[-1].redirects += redirects
        return
    if node.type == "pipeline":
        first = True
        for child in node.children:
            if child.is_named:
                _commands(child, source, out, piped=piped or not first)
                first = False
        return
    for child in node.children:
        _commands(child, source, out, piped=False)


def _nested(node: Node, source: bytes, out: list[Command]) -> None:
    if node.type in {"command_substitution", "process_substitution"}:
        for child in node.children:
            _commands(child, source, out)
        return
    for child in node.children:
        _nested(child, source, out)


def _redirect(node: Node, source: bytes) -> Redirect:
    operator = next((c.type for c in node.children if not c.is_named), "")
    targets = [c for c in node.children if c.is_named and c.type not in {"file_descriptor", "heredoc_body"}]
    target = _word(targets[0], source) if targets else ""
    if node.type == "heredoc_redirect":
        body = next((c for c in node.children if c.type == "heredoc_body"), None)
        target = source[body.start_byte : body.end_byte].decode("utf-8", "replace") if body is not None else ""
    return Redirect(operator=operator, target=target)


def _has_control(node: Node) -> bool:
    return node.type in _CONTROL or any(_has_control(c) for c in node.children)


def parse(text: str) -> list[Statement]:
    """The top-level statements of a block in order; comment lines come back as statements of their own."""
    masked, originals = mask(text)
    source = masked.encode()
    tree = _parser().parse(source)
    statements: list[Statement] = []
    previous: Node | None = None
    for node in tree.root_node.children:
        raw = source[node.start_byte : node.end_byte].decode("utf-8", "replace")
        written = originals(raw)
        same_line = previous is not None and previous.end_point[0] == node.start_point[0]
        blank = previous is not None and node.start_point[0] - previous.end_point[0] > 1
        if node.type == "comment" and same_line and statements and not statements[-1].comment:
            # `pm2 list  # or docker ps`: the comment belongs to the command it follows.
            gap = source[previous.end_byte : node.start_byte].decode("utf-8", "replace")
            statements[-1].text += originals(gap) + written
            previous = node
            continue
        previous = node
        if node.type == "comment":
            statements.append(Statement(text=written, commands=[], control=False, comment=written, blank_before=blank))
            continue
        if not node.is_named:  # the `;` or `&` that ends the statement before
            if statements and not statements[-1].comment and same_line:
                statements[-1].text += written
            continue
        commands: list[Command] = []
        _commands(node, source, commands)
        for command in commands:
            command.words = [originals(w) for w in command.words]
            for redirect in command.redirects:
                redirect.target = originals(redirect.target)
        statements.append(
            Statement(
                text=written,
                commands=commands,
                control=_has_control(node) or node.type == "ERROR",
                blank_before=blank,
                error=node.has_error,
            )
        )
    return statements
