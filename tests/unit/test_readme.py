"""README.md and docs/*.md: the README keeps its opening lines and stays a short user guide, and every
command and link in them names what exists in this repository: playbooks, inventories, the inventory's
vault password file, variables the playbooks and roles read, Makefile targets, files and headings.

Commands are read from code blocks (indented or fenced) and inline code; links from the prose."""

import functools
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

# CI and people run these: the README's first lines stay as they are.
OPENING = [
    "# shopstream.swarm",
    "",
    "    make deploy   # ShopStream on this host, as a single-node Docker Swarm",
    "    make test     # every test: lint, unit, this host, a 5-node swarm of node containers",
]
MAX_README_LINES = 260
HTTPS_STATEMENT = "HTTPS is the default"
HTTPS_WITHIN_LINES = 30
LIMITS_HEADING = "What the build machines cannot do"
LEFT_OUT = ("MinIO", "Elasticsearch", "Grafana", "Loki", "Promtail")

# ansible-playbook's options that take a value (the value is no playbook).
ANSIBLE_OPTIONS_WITH_VALUE = {
    "-i", "--inventory", "-e", "--extra-vars", "--vault-password-file", "--vault-id", "-t", "--tags",
    "--skip-tags", "-l", "--limit", "-u", "--user", "-f", "--forks", "-c", "--connection", "-M",
    "--module-path", "--become-user", "--become-method", "--private-key", "--start-at-task", "-T", "--timeout",
}  # fmt: skip
MAKE_OPTIONS_WITH_VALUE = {"-C", "-f", "-j", "-l", "-o", "-W", "-I", "--directory", "--file"}
SEPARATORS = {"&&", "||", ";", "|", "&"}
PLACEHOLDER = "<"
VAULT_PASS = re.compile(r"inventories/(?P<env>[^/\s]+)/\.vault-pass")
FQCN_PLAYBOOK = re.compile(r"shopstream\.swarm\.(?P<name>\w+)")
# Where the variables an `-e` may set are read: the roles' defaults and argument specs, and the
# playbooks (a variable with a default, or tested for being defined).
ROLE_VARIABLE_SOURCES = ("roles/*/defaults/main.yml", "roles/*/meta/argument_specs.yml")
PLAYBOOK_VARIABLE_SOURCES = ("playbooks/*.yml", "site.yml")
PLAYBOOK_VARIABLE = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)(?:\s*\|\s*default\b|\s+is\s+(?:not\s+)?defined\b)")

FENCE = re.compile(r"^ {0,3}(?P<fence>```+|~~~+)")
HEADING = re.compile(r"^ {0,3}(?P<level>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
LIST_ITEM = re.compile(r"^(?P<marker>\s*(?:[-*+]|\d+[.)])\s+)")
INLINE_CODE = re.compile(r"(?P<ticks>`+)(?P<code>.+?)(?<!`)(?P=ticks)(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\(\s*<?(?P<target>[^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s+.*)?$", re.MULTILINE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
COMMENT = re.compile(r"(^|\s)#.*$")


@dataclass
class Page:
    """A markdown page sorted into code (line, text) and prose paragraphs (first line, text)."""

    path: Path
    code: list = field(default_factory=list)
    prose: list = field(default_factory=list)
    headings: list = field(default_factory=list)

    @property
    def name(self):
        return display(self.path)

    @property
    def root(self):
        """The tree its links must stay in: the repository (a page elsewhere: its own directory)."""
        return ROOT if inside(self.path, ROOT) else self.path.parent


def inside(path, root):
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def display(path):
    return path.resolve().relative_to(ROOT).as_posix() if inside(path, ROOT) else str(path)


def parse(path):
    """Split a page into code-block lines, prose paragraphs and headings, as GitHub renders them.

    An indented code block starts after a blank line, four columns right of the text it is in (a
    list item's text, in a list); a fenced block runs to its closing fence. Backslash continuations
    of a code line are joined to it."""
    page = Page(path)
    fence = None
    list_column = None  # the column of the text of the list item the prose is in
    after_blank = True
    paragraph = None  # [first line, lines] of the prose paragraph being read
    in_code = False

    def end_paragraph():
        nonlocal paragraph
        if paragraph:
            page.prose.append((paragraph[0], "\n".join(paragraph[1])))
        paragraph = None

    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if fence:
            if line.strip().startswith(fence):
                fence = None
            else:
                page.code.append((number, line))
            continue
        opening = FENCE.match(line)
        if opening:
            end_paragraph()
            fence = opening.group("fence")
            in_code = False
            continue
        if not line.strip():
            end_paragraph()
            after_blank = True
            continue
        indent = len(line) - len(line.lstrip(" "))
        code_column = 4 if list_column is None else list_column + 4
        if indent >= code_column and (after_blank or in_code) and paragraph is None:
            page.code.append((number, line[code_column:]))
            in_code = True
            after_blank = False
            continue
        in_code = False
        heading = HEADING.match(line)
        if heading:
            end_paragraph()
            page.headings.append((number, heading.group("text")))
            list_column = None
            after_blank = False
            continue
        item = LIST_ITEM.match(line)
        if item:
            end_paragraph()
            list_column = len(item.group("marker"))
        elif after_blank and list_column is not None and indent < list_column:
            list_column = None
        if paragraph is None:
            paragraph = [number, []]
        paragraph[1].append(line)
        after_blank = False
    end_paragraph()
    page.code = join_continuations(page.code)
    return page


def join_continuations(lines):
    """Code lines with a command continued by a trailing backslash, joined into one."""
    joined = []
    continued = False
    for number, text in lines:
        if continued:
            joined[-1] = (joined[-1][0], joined[-1][1] + " " + text.strip())
        else:
            joined.append((number, text))
        continued = joined[-1][1].rstrip().endswith("\\")
        if continued:
            joined[-1] = (joined[-1][0], joined[-1][1].rstrip()[:-1])
    return joined


def snippets(page):
    """(line, text) of every code line and every inline code span of the page."""
    found = list(page.code)
    for first, text in page.prose:
        for span in INLINE_CODE.finditer(text):
            found.append((first + text.count("\n", 0, span.start()), " ".join(span.group("code").split())))
    return sorted(found)


def commands(text):
    """The commands of a snippet: lists of words, split at `&&`, `;`, `|`; comments dropped."""
    text = COMMENT.sub("", text)
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    found = [[]]
    for word in words:
        if word in SEPARATORS:
            found.append([])
        elif word.endswith(";") and len(word) > 1:
            found[-1].append(word[:-1])
            found.append([])
        else:
            found[-1].append(word)
    result = []
    for words_of_one in found:
        # Leading `sudo` and environment assignments are not the command.
        while words_of_one and (words_of_one[0] == "sudo" or re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words_of_one[0])):
            words_of_one = words_of_one[1:]
        if words_of_one:
            result.append(words_of_one)
    return result


def options(words):
    """The (option, value) pairs of a command, `--opt value` and `--opt=value` alike."""
    pairs = []
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith("--") and "=" in word:
            option, value = word.split("=", 1)
            pairs.append((option, value))
        elif word in ANSIBLE_OPTIONS_WITH_VALUE and index + 1 < len(words):
            pairs.append((word, words[index + 1]))
            index += 1
        index += 1
    return pairs


def positional(words, with_value):
    """The words of a command that are neither options nor their values."""
    found = []
    index = 1
    while index < len(words):
        word = words[index]
        if word in with_value:
            index += 2
            continue
        if not word.startswith("-"):
            found.append(word)
        index += 1
    return found


@functools.cache
def makefile_targets():
    targets = set()
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        rule = re.match(r"^(?P<names>[A-Za-z0-9_.-]+(?:[ \t]+[A-Za-z0-9_.-]+)*)[ \t]*::?(?!=)", line)
        if rule:
            targets.update(name for name in rule.group("names").split() if not name.startswith("."))
    return targets


def read_all(patterns):
    return "\n".join(path.read_text(encoding="utf-8") for pattern in patterns for path in sorted(ROOT.glob(pattern)))


@functools.cache
def known_variables():
    names = set(PLAYBOOK_VARIABLE.findall(read_all(PLAYBOOK_VARIABLE_SOURCES)))
    for path in sorted(ROOT.glob("roles/*/defaults/main.yml")):
        names.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    for path in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        specs = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("argument_specs") or {}
        for spec in specs.values():
            names.update(spec.get("options") or {})
    return names


def extra_var_names(value):
    """The variable names an `-e` value sets: `a=1 b=2`, JSON or YAML mapping, or none for @file."""
    if value.startswith("@"):
        return []
    if value.lstrip().startswith("{"):
        try:
            return list(json.loads(value))
        except ValueError:
            return re.findall(r"[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?\s*:", value)
    return [pair.split("=", 1)[0] for pair in value.split() if "=" in pair]


def github_anchor(heading):
    """The anchor GitHub gives a heading: its text lower-cased, punctuation removed, spaces to `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@functools.cache
def anchors(path):
    """Every anchor of a markdown page; a repeated heading gets -1, -2, ... as on GitHub."""
    seen = {}
    result = set()
    for _line, heading in parse(path).headings:
        anchor = github_anchor(heading)
        if anchor in seen:
            seen[anchor] += 1
            anchor = f"{anchor}-{seen[anchor]}"
        else:
            seen[anchor] = 0
        result.add(anchor)
    return result


def where(page, line, text):
    return f"{page.name}:{line}: `{text}`"


def each_command(page, name=None):
    """(line, snippet, words) of every command of the page, or of those run as `name`."""
    for line, text in snippets(page):
        for words in commands(text):
            if name is None or words[0] == name:
                yield line, text, words


def playbook_problems(page):
    problems = []
    for line, text, words in each_command(page, "ansible-playbook"):
        playbooks = positional(words, ANSIBLE_OPTIONS_WITH_VALUE)
        if not playbooks and len(words) > 1:
            problems.append(f"{where(page, line, text)}: names no playbook")
        for playbook in playbooks:
            if PLACEHOLDER in playbook:
                continue
            fqcn = FQCN_PLAYBOOK.fullmatch(playbook)
            path = ROOT / "playbooks" / f"{fqcn.group('name')}.yml" if fqcn else ROOT / playbook
            if not path.is_file():
                problems.append(
                    f"{where(page, line, text)}: playbook {playbook} does not exist ({path.relative_to(ROOT)})"
                )
    return problems


def inventory_problems(page):
    problems = []
    for line, text, words in each_command(page):
        if not words[0].startswith("ansible"):
            continue
        for option, value in options(words):
            if option not in ("-i", "--inventory") or PLACEHOLDER in value:
                continue
            if not (ROOT / value).is_dir():
                problems.append(f"{where(page, line, text)}: -i {value} is no inventory directory of this repository")
    return problems


def vault_password_problems(page):
    problems = []
    for line, text, words in each_command(page):
        pairs = options(words)
        inventories = [value for option, value in pairs if option in ("-i", "--inventory")]
        for option, value in pairs:
            if option != "--vault-password-file":
                continue
            form = VAULT_PASS.fullmatch(value)
            if not form:
                problems.append(
                    f"{where(page, line, text)}: --vault-password-file {value} is not inventories/<env>/.vault-pass"
                )
                continue
            env = form.group("env")
            if PLACEHOLDER not in env and not (ROOT / "inventories" / env).is_dir():
                problems.append(
                    f"{where(page, line, text)}: --vault-password-file {value}: no inventory inventories/{env}"
                )
            inventory = f"inventories/{env}"
            if inventories and all(i.rstrip("/") != inventory for i in inventories):
                problems.append(
                    f"{where(page, line, text)}: --vault-password-file {value} is not the password file of -i "
                    + ", -i ".join(inventories)
                )
    return problems


def extra_var_problems(page):
    problems = []
    known = known_variables()
    for line, text, words in each_command(page):
        if not (words[0].startswith("ansible") or words[0] in ("-e", "--extra-vars")):
            continue
        pairs = options(["", *words]) if words[0] in ("-e", "--extra-vars") else options(words)
        for option, value in pairs:
            if option not in ("-e", "--extra-vars"):
                continue
            for name in extra_var_names(value):
                if PLACEHOLDER not in name and name not in known:
                    problems.append(
                        f"{where(page, line, text)}: -e {name} is read by no playbook or role "
                        f"({', '.join(ROLE_VARIABLE_SOURCES + PLAYBOOK_VARIABLE_SOURCES)})"
                    )
    return problems


def make_problems(page):
    problems = []
    targets = makefile_targets()
    for line, text, words in each_command(page, "make"):
        for target in positional(words, MAKE_OPTIONS_WITH_VALUE):
            if "=" not in target and target not in targets:
                problems.append(f"{where(page, line, text)}: make {target}: no such target in the Makefile")
    return problems


def link_problems(page):
    problems = []
    for first, text in page.prose:
        # Links inside inline code are code, not links.
        prose = INLINE_CODE.sub(lambda span: re.sub(r"[^\n]", " ", span.group(0)), text)
        targets = [(m.start(), m.group("target")) for m in LINK.finditer(prose)]
        targets += [(m.start(), m.group("target")) for m in REFERENCE.finditer(prose)]
        for start, target in targets:
            line = first + prose.count("\n", 0, start)
            if not target or SCHEME.match(target):
                continue
            path_part, _sep, anchor = target.partition("#")
            path = (page.path.parent / path_part).resolve() if path_part else page.path
            shown = f"{page.name}:{line}: ({target})"
            if not inside(path, page.root):
                problems.append(f"{shown}: points outside the repository")
            elif not path.exists():
                problems.append(f"{shown}: {path_part} does not exist")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                problems.append(f"{shown}: no heading of {display(path)} has the anchor #{anchor}")
    return problems


CHECKS = {
    "playbooks": playbook_problems,
    "inventories": inventory_problems,
    "vault password files": vault_password_problems,
    "extra vars": extra_var_problems,
    "make targets": make_problems,
    "links": link_problems,
}


def page_id(path):
    return display(path)


def test_there_is_documentation_beside_the_readme():
    assert len(PAGES) > 1, "docs/*.md: none found"


def test_readme_opens_with_its_title_and_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= len(OPENING), "README.md: shorter than its opening lines"
    for number, (want, got) in enumerate(zip(OPENING, lines), 1):
        assert got == want, f"README.md:{number}: must be {want!r} (CI and people rely on it), is {got!r}"


def test_readme_is_a_short_user_guide():
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= MAX_README_LINES, (
        f"README.md: {count} lines, at most {MAX_README_LINES}; move the detail to docs/ and link it"
    )


def test_readme_says_https_is_the_default_near_its_top():
    top = README.read_text(encoding="utf-8").splitlines()[:HTTPS_WITHIN_LINES]
    assert any(HTTPS_STATEMENT in line for line in top), (
        f"README.md: {HTTPS_STATEMENT!r} is not within its first {HTTPS_WITHIN_LINES} lines"
    )


def test_readme_says_what_the_build_machines_cannot_run():
    page = parse(README)
    headings = [(line, text) for line, text in page.headings if text == LIMITS_HEADING]
    assert headings, f"README.md: no section {LIMITS_HEADING!r}"
    start = headings[0][0]
    later = [line for line, _text in page.headings if line > start]
    lines = README.read_text(encoding="utf-8").splitlines()[start : later[0] - 1 if later else None]
    section = " ".join(" ".join(lines).split())
    missing = [name for name in LEFT_OUT if name not in section]
    assert not missing, f"README.md:{start}: {LIMITS_HEADING!r} does not name {', '.join(missing)}"
    assert "checked statically only" in section, (
        f"README.md:{start}: {LIMITS_HEADING!r} does not say they are checked statically only"
    )


@pytest.mark.parametrize("doc", sorted(DOCS.glob("*.md")), ids=page_id)
def test_readme_links_every_docs_page(doc):
    page = parse(README)
    linked = set()
    for _first, text in page.prose:
        for match in LINK.finditer(text):
            path_part = match.group("target").partition("#")[0]
            if path_part and not SCHEME.match(path_part):
                linked.add((README.parent / path_part).resolve())
    assert doc.resolve() in linked, f"README.md: no link to {page_id(doc)}"


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_every_command_and_link_names_what_exists(path, check):
    problems = CHECKS[check](parse(path))
    assert not problems, f"{len(problems)} bad {check}:\n" + "\n".join(problems)


# The checks themselves, on a page with one mistake of each kind.
BAD_PAGE = """# A page

## Deploy it

    ansible-playbook playbooks/nope.yml -i inventories/prod --vault-password-file .vault-pass
    make deploy-everything
    ansible-playbook site.yml -i inventories/local \\
      --vault-password-file inventories/production/.vault-pass -e no_such_variable_anywhere=1 -e hosts=all

- an item, then its code:

      ansible-playbook shopstream.swarm.nope -i inventories/<env> --vault-password-file inventories/<env>/.vault-pass

Inline: `ansible-playbook playbooks/scale.yml -i ...`, and [a page](missing.md), [a heading](#nowhere),
[fine](#deploy-it) and `[not a link](missing-too.md)`.
"""


def test_the_checks_find_each_kind_of_mistake(tmp_path):
    path = tmp_path / "bad.md"
    path.write_text(BAD_PAGE, encoding="utf-8")
    page = parse(path)
    found = {check: CHECKS[check](page) for check in CHECKS}
    assert [p.split(": ", 2)[2] for p in found["playbooks"]] == [
        "playbook playbooks/nope.yml does not exist (playbooks/nope.yml)",
        "playbook shopstream.swarm.nope does not exist (playbooks/nope.yml)",
    ], found["playbooks"]
    assert [p.split("`: ")[1] for p in found["inventories"]] == [
        "-i inventories/prod is no inventory directory of this repository",
        "-i ... is no inventory directory of this repository",
    ], found["inventories"]
    assert len(found["vault password files"]) == 2, found["vault password files"]
    assert found["vault password files"][0].startswith(f"{path}:5: "), found["vault password files"]
    assert "is not the password file of -i inventories/local" in found["vault password files"][1]
    assert found["vault password files"][1].startswith(f"{path}:7: "), found["vault password files"]
    assert [p.split("`: -e ")[1].split(" ")[0] for p in found["extra vars"]] == ["no_such_variable_anywhere", "hosts"]
    assert found["make targets"] == [
        f"{path}:6: `make deploy-everything`: make deploy-everything: no such target in the Makefile"
    ]
    assert len(found["links"]) == 2, found["links"]
    assert "missing.md does not exist" in found["links"][0]
    assert found["links"][0].startswith(f"{path}:14: "), found["links"]
    assert "#nowhere" in found["links"][1]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Verify: the proof", "verify-the-proof"),
        ("MariaDB's passwords (pinned)", "mariadbs-passwords-pinned"),
        ("MariaDB's passwords", "mariadbs-passwords"),
        ("Offline mode: the image kit", "offline-mode-the-image-kit"),
        ("Secrets, configs and the vault", "secrets-configs-and-the-vault"),
        ("The `swarm_stack` module", "the-swarm_stack-module"),
        ("make test and CI", "make-test-and-ci"),
    ],
)
def test_anchors_follow_githubs_rules(heading, anchor):
    assert github_anchor(heading) == anchor
