"""Check (and repair) the copy-forward convention.

Each chapter copies the earlier code it needs, so every folder runs on its
own. Copies drift when someone edits one of them. This module finds

- every top-level function, class or module-level constant (an ALL_CAPS name
  assigned at the top level, such as `GPT_CONFIG_124M` or a URL) that is
  defined in more than one place (`.py` files and notebook code cells), and
  reports the copies whose source differs from the definition's home;
- copies kept under another name: such a copy carries one marker comment on
  the line above it, naming its source and the rename,

      # Copied from ch02/01_main-chapter-code/timing.py::synchronize with synchronize->wait

  and must equal the source with the rename applied; a function or class
  that equals another one apart from its name but has no marker is reported;
- whole copied files (`downloads.py`): each copy is byte-identical to its home.

    python tests/copy_forward.py          # report problems, exit 1 if any
    python tests/copy_forward.py --fix    # rewrite copies from their homes, add markers
"""

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parent.parent

# The rule, word for word as CONTRIBUTING.md states it (a test compares them).
HOME_RULE = (
    "The home of a name is the chapter that introduces it: the earliest chapter "
    "that defines it, and within that chapter the main notebook `chNN.ipynb`, then "
    "the files of the main code folder, then the bonus folders (each group in path "
    "order). `previous_chapters.py` is a home only when no other file defines the name. "
    "The package `pkg/llms_from_scratch` comes last: it is the home only of the names "
    "no chapter folder defines."
)

# Folders that are not course code (the tests have their own helpers).
EXCLUDED_TOP_LEVEL = {"tests"}

# The installable package: copies of the chapters' code, home of its own additions.
PACKAGE_FOLDER = "pkg"

# Names every script may define in its own way.
SCRIPT_ENTRY_POINTS = {"main", "parse_args", "build_parser"}

# Files copied whole into every folder that needs them: file name -> home.
WHOLE_FILE_HOMES = {
    "downloads.py": "ch02/01_main-chapter-code/downloads.py",
    "script_helpers.py": "ch02/02_bonus_bytepair-encoder/script_helpers.py",
    "llm_client.py": "ch07/02_dataset-utilities/llm_client.py",
}

# Deliberate variants: (name, repository-relative path) -> why it differs.
# Variants registered with the same reason form their own family: they must be
# identical to each other (the family's home is chosen as for any name).
CH06_CLASSIFICATION_LOSS = ("chapter 6 classifies from the last token's logits "
                            "instead of predicting every next token")
VARIANTS = {
    ("GPT2_SIZES", "ch04/02_performance-analysis/performance.py"):
        "keyed by the short size names its --sizes flag takes (124M), not the book's labels",
    ("TEST_MODE_CONFIG", "ch07/01_main-chapter-code/gpt_instruction_finetuning.py"):
        "chapter 7's test mode needs a 256-token context for its prompts, not chapter 6's",
    ("calc_loss_batch", "ch06/01_main-chapter-code/ch06.ipynb"): CH06_CLASSIFICATION_LOSS,
    ("calc_loss_batch", "ch06/01_main-chapter-code/gpt_class_finetune.py"):
        CH06_CLASSIFICATION_LOSS,
    ("precompute_rope_params", "ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb"):
        "Llama 2's version; the next notebook (the home) adds freq_config for Llama 3.1",
    ("calc_loss_batch", "appendix-E/01_main-chapter-code/previous_chapters.py"):
        CH06_CLASSIFICATION_LOSS,
    ("GPTModel", "ch04/03_kv-cache/gpt_with_kv_cache.py"):
        "the book's KV-cache GPTModel: forward(in_idx, use_cache=False) and reset_kv_cache()",
    ("GPTModel", "ch04/03_kv-cache/gpt_with_kv_cache_optimized.py"):
        "the book's optimized KV-cache GPTModel: a sliding window over a preallocated cache",
    ("generate_text_simple_cached", "ch04/03_kv-cache/gpt_with_kv_cache_optimized.py"):
        "the book's optimized version: chunked prefill for the windowed cache",
    ("calc_loss_batch", "pkg/llms_from_scratch/ch06.py"): CH06_CLASSIFICATION_LOSS,
}
# The package's key-value-cache models: chapter 4's layers under the same names
# (so state dicts load both ways), computing only the new tokens from a cache.
PKG_KV_CACHE = ("the package's KV-cache GPT-2: model(ids, cache=KVCache) continues at "
                "current_pos; same layers and weights as chapter 4's")
PKG_KV_CACHE_BATCHED = ("the package's batched KV-cache GPT-2: per-row positions "
                        "(start_pos) for left-padded prompts; same weights as chapter 4's")
for _name in ("MultiHeadAttention", "TransformerBlock", "GPTModel"):
    VARIANTS[(_name, "pkg/llms_from_scratch/kv_cache/gpt2.py")] = PKG_KV_CACHE
VARIANTS.update({
    ("GPTModel", "pkg/llms_from_scratch/kv_cache_batched/gpt2.py"): PKG_KV_CACHE_BATCHED,
    ("generate_text_simple", "pkg/llms_from_scratch/kv_cache/generate.py"):
        "the book's package: the same greedy ids, fed through model(ids, cache=KVCache)",
    ("generate_text_simple", "pkg/llms_from_scratch/kv_cache_batched/generate.py"):
        "the book's package: left-padded prompts of different lengths, per-row positions",
    ("Llama3Model", "pkg/llms_from_scratch/kv_cache/llama3.py"):
        "the chapter's Llama3Model behind the package's cache protocol (cache=, reset_kv_cache)",
    ("assign", "pkg/llms_from_scratch/llama3.py"):
        "the book package's Llama helper names the tensor in its error (tensor_name)",
    ("TransformerBlockFast", "pkg/llms_from_scratch/llama3.py"):
        "the book package's name for Llama 3's block (RMSNorm, grouped-query attention)",
    ("generate_text_simple_stream", "pkg/llms_from_scratch/kv_cache_batched/generate.py"):
        "the batched stream: left-padded prompts, one token per row and step",
    ("KVCache", "pkg/llms_from_scratch/kv_cache_batched/utils.py"):
        "the book's batched cache: KVCache(n_layers, batch_size), rows read one by one",
})
# ch05/14: chapter 5's loop for Llama 3.2 and Qwen3 (the book repository's ch05/14 names).
VARIANTS.update({
    ("create_dataloader_v1", "ch05/14_ch05_with_other_llms/previous_chapters.py"):
        "the book's ch05/14 signature: takes the tokenizer (Llama's or Qwen's, not GPT-2's)",
    ("generate_and_print_sample", "ch05/14_ch05_with_other_llms/previous_chapters.py"):
        "RoPE models have no pos_emb: the context length is the length of the cos table",
})
# ch05/14's copies of Qwen3's blocks join ch05/11_qwen3's family (the same reason string).
VARIANTS.update({
    (name, "ch05/14_ch05_with_other_llms/qwen3.py"):
        "Qwen3's version of the name (book repository's ch05/11_qwen3): SwiGLU, QK-norm, "
        "fixed head_dim"
    for name in ("FeedForward", "RMSNorm", "TransformerBlock", "GroupedQueryAttention")
})
VARIANTS.update({
    ("LLAMA32_CONFIG", "ch05/14_ch05_with_other_llms/ch05-llama32.ipynb"):
        "the book's ch05/14 training configuration: 1B plus overrides and train_context_length",
    ("QWEN3_CONFIG", "ch05/14_ch05_with_other_llms/ch05-qwen3.ipynb"):
        "the book's ch05/14 training configuration: 0.6B plus overrides and train_context_length",
    ("compute_rope_params", "pkg/llms_from_scratch/llama3.py"):
        "the package's Llama 3 RoPE (freq_config); Qwen3's (ch05/11) has no frequency scaling",
})

PARAMETERS_TAG = "parameters"
CONSTANT_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
MARKER = re.compile(
    r"#\s*Copied from\s+(?P<path>[^\s:]+)(?:::(?P<name>\w+))?"
    r"(?:\s+with\s+(?P<renames>\w+->\w+(?:\s*,\s*\w+->\w+)*))?\s*$"
)


@dataclass
class Marker:
    """A `# Copied from PATH[::NAME] [with A->B, ...]` comment above a definition."""

    path: str
    name: str | None
    renames: list = field(default_factory=list)  # [(old, new), ...]

    def text(self):
        line = f"# Copied from {self.path}"
        if self.name:
            line += f"::{self.name}"
        if self.renames:
            line += " with " + ", ".join(f"{old}->{new}" for old, new in self.renames)
        return line


@dataclass
class Definition:
    name: str
    path: str             # repository-relative, with forward slashes
    cell: int | None      # notebook cell index, None for .py files
    start: int            # first line (0-based) within the file or cell
    end: int              # one past the last line
    source: str
    shape: str | None = None     # the code with its own name blanked (defs/classes only)
    marker: Marker | None = None

    def location(self):
        return self.path if self.cell is None else f"{self.path} (cell {self.cell})"


@dataclass
class Problem:
    """One broken copy: `message` says what; `fix` (a repair), when there is one."""

    message: str
    path: str
    kind: str                       # "drift", "marker", "unmarked", "file"
    copy: Definition | None = None
    replacement: str | None = None  # new source for the copy, or the marker line to add


def rename(source, renames):
    """`source` with each whole-word `old` replaced by `new`, all in one pass."""
    if not renames:
        return source
    table = dict(renames)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, table)) + r")\b")
    return pattern.sub(lambda match: table[match.group(1)], source)


def _without_magics(source):
    """Blank out IPython magics and shell escapes so the cell parses as Python."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")
    )


def _shape(node):
    """The definition's syntax tree with its own name blanked, as text.

    Two definitions with the same shape are the same code under two names
    (comments and layout aside).
    """
    original = node.name
    node.name = "_"
    try:
        return ast.dump(node)
    finally:
        node.name = original


def _top_level_definitions(source):
    """(name, start, end, shape) of each top-level def, class or ALL_CAPS constant."""
    tree = ast.parse(_without_magics(source))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            yield node.name, first - 1, node.end_lineno, _shape(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if (len(targets) == 1 and isinstance(targets[0], ast.Name)
                    and CONSTANT_NAME.fullmatch(targets[0].id)):
                yield targets[0].id, node.lineno - 1, node.end_lineno, None


def _marker_above(lines, start):
    if start == 0:
        return None
    match = MARKER.fullmatch(lines[start - 1].strip())
    if match is None:
        return None
    renames = []
    if match.group("renames"):
        renames = [tuple(pair.strip().split("->")) for pair in match.group("renames").split(",")]
    return Marker(match.group("path"), match.group("name"), renames)


def _course_files(root):
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if relative.parts[0] in EXCLUDED_TOP_LEVEL or "__pycache__" in relative.parts:
            continue
        if path.suffix in {".py", ".ipynb"} and path.is_file():
            yield path, relative.as_posix()


def _sources_of(path):
    """(cell index or None, source text, holds knobs?) for each code unit in the file.

    A notebook's cell tagged `parameters` holds that notebook's own knobs
    (`NUM_EPOCHS = 10`): same names in two notebooks are not copies.
    """
    if path.suffix == ".py":
        yield None, path.read_text(), False
        return
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            tags = cell.get("metadata", {}).get("tags", [])
            yield index, cell.source, PARAMETERS_TAG in tags


def find_definitions(root=REPO_ROOT):
    root = Path(root)
    definitions = []
    for path, relative in _course_files(root):
        for cell, source, holds_knobs in _sources_of(path):
            lines = source.split("\n")
            try:
                found = list(_top_level_definitions(source))
            except SyntaxError as err:
                raise SyntaxError(f"{relative} (cell {cell}): {err}") from None
            for name, start, end, shape in found:
                if holds_knobs and shape is None:
                    continue
                body = "\n".join(lines[start:end])
                definitions.append(Definition(name, relative, cell, start, end, body, shape,
                                              _marker_above(lines, start)))
    return definitions


def home_rank(path, cell=None, start=0):
    """Sort key of a definition's place: the smallest key is the home (HOME_RULE)."""
    parts = path.split("/")
    match = re.fullmatch(r"(ch|appendix-)(\w+)", parts[0])
    if match and match.group(1) == "ch":
        chapter = (0, int(match.group(2)), "")
    elif match:
        chapter = (1, 0, match.group(2))
    else:
        chapter = (2, 0, parts[0])
    filename = parts[-1]
    is_main_notebook = re.fullmatch(rf"{parts[0]}\.ipynb", filename) is not None
    in_main_folder = len(parts) > 1 and parts[1] == "01_main-chapter-code"
    is_copy_file = filename == "previous_chapters.py"
    in_package = parts[0] == PACKAGE_FOLDER
    return (in_package, is_copy_file, chapter, not is_main_notebook, not in_main_folder,
            path, cell or 0, start)


def _rank(definition):
    return home_rank(definition.path, definition.cell, definition.start)


def _registered(definition, variants):
    return (definition.name in SCRIPT_ENTRY_POINTS
            or (definition.name, definition.path) in variants)


def group_copies(definitions, variants=None):
    """{key: [home, copy, copy, ...]} for names defined more than once.

    The key is the name, or (name, reason) for registered variants: variants
    registered with the same reason form a family of their own.
    """
    variants = VARIANTS if variants is None else variants
    groups = {}
    for definition in definitions:
        if definition.name in SCRIPT_ENTRY_POINTS:
            continue
        reason = variants.get((definition.name, definition.path))
        key = definition.name if reason is None else (definition.name, reason)
        groups.setdefault(key, []).append(definition)
    return {key: sorted(group, key=_rank)
            for key, group in groups.items() if len(group) > 1}


def _drifted_copies(definitions, variants):
    problems = []
    for group in group_copies(definitions, variants).values():
        home = group[0]
        for copy in group[1:]:
            if copy.source != home.source:
                problems.append(Problem(
                    f"{copy.name}: {copy.location()} differs from its home {home.location()}",
                    copy.path, "drift", copy, home.source))
    return problems


def _marker_problems(definitions):
    """Each marked copy must equal its named source with the renames applied."""
    by_place = {}
    for definition in definitions:
        by_place.setdefault((definition.path, definition.name), []).append(definition)
    problems = []
    for copy in definitions:
        marker = copy.marker
        if marker is None:
            continue
        sources = by_place.get((marker.path, marker.name or copy.name))
        if not sources:
            problems.append(Problem(
                f"{copy.name}: {copy.location()} says it is copied from "
                f"{marker.path}::{marker.name or copy.name}, which does not exist",
                copy.path, "marker", copy))
            continue
        expected = rename(sources[0].source, marker.renames)
        if copy.source != expected:
            problems.append(Problem(
                f"{copy.name}: {copy.location()} differs from {marker.text()[2:]}",
                copy.path, "drift", copy, expected))
    return problems


def _unmarked_renamed_copies(definitions, variants):
    """Functions or classes equal to another one but for the name, with no marker."""
    by_shape = {}
    for definition in definitions:
        if definition.shape is not None and not _registered(definition, variants):
            by_shape.setdefault(definition.shape, []).append(definition)
    problems = []
    for group in by_shape.values():
        home = min(group, key=_rank)
        for copy in group:
            if copy.name == home.name or copy.marker is not None:
                continue
            marker = Marker(home.path, home.name, [(home.name, copy.name)])
            problems.append(Problem(
                f"{copy.name}: {copy.location()} is {home.name} from {home.location()} "
                f"under another name; mark it with `{marker.text()}`",
                copy.path, "unmarked", copy, marker.text()))
    return problems


def _whole_file_problems(root):
    problems = []
    for path, relative in _course_files(root):
        home = WHOLE_FILE_HOMES.get(path.name)
        if home is None or relative == home:
            continue
        if path.read_bytes() != (root / home).read_bytes():
            problems.append(Problem(f"{relative} differs from its home {home} (copied whole)",
                                    relative, "file", replacement=home))
    return problems


def find_problems(root=REPO_ROOT, variants=None):
    """Every broken copy in the tree under `root`, as `Problem`s."""
    root = Path(root)
    variants = VARIANTS if variants is None else variants
    definitions = find_definitions(root)
    problems = _whole_file_problems(root)
    # A whole-file copy is repaired as a file; its definitions need no second report.
    whole_files = {problem.path for problem in problems}
    problems += [problem for problem in (_drifted_copies(definitions, variants)
                                         + _marker_problems(definitions)
                                         + _unmarked_renamed_copies(definitions, variants))
                 if problem.path not in whole_files]
    # A copy that is both drifted from its home and its marker's source is reported once.
    unique = {}
    for problem in problems:
        key = (problem.kind, problem.path, id(problem.copy))
        unique.setdefault(key, problem)
    return list(unique.values())


def fix_copies(root=REPO_ROOT, variants=None):
    """Repair every problem that has a repair; return how many were repaired."""
    root = Path(root)
    problems = [p for p in find_problems(root, variants) if p.replacement is not None]
    by_file = {}
    for problem in problems:
        if problem.kind == "file":
            (root / problem.path).write_bytes((root / problem.replacement).read_bytes())
        else:
            by_file.setdefault(problem.path, []).append(problem)
    for relative, file_problems in by_file.items():
        _rewrite_file(root / relative, file_problems)
    return len(problems)


def _apply(text, problem):
    lines = text.split("\n")
    copy = problem.copy
    if problem.kind == "unmarked":
        indent = lines[copy.start][: len(lines[copy.start]) - len(lines[copy.start].lstrip())]
        lines.insert(copy.start, indent + problem.replacement)
    else:
        lines[copy.start:copy.end] = problem.replacement.split("\n")
    return "\n".join(lines)


def _rewrite_file(path, problems):
    # Bottom-up, so earlier line numbers stay valid after each replacement.
    problems = sorted(problems, key=lambda p: (p.copy.cell or 0, p.copy.start), reverse=True)
    if path.suffix == ".py":
        text = path.read_text()
        for problem in problems:
            text = _apply(text, problem)
        path.write_text(text)
        return
    nb = nbformat.read(path, as_version=4)
    for problem in problems:
        cell = nb.cells[problem.copy.cell]
        cell.source = _apply(cell.source, problem)
    nbformat.write(nb, path)


def main():
    parser = argparse.ArgumentParser(description="Check copy-forward definitions.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--fix", action="store_true",
                        help="rewrite copies from their homes and add missing markers")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository to check")
    args = parser.parse_args()
    if args.fix:
        # A repair can reveal another (a fixed marker may now name a drifted source).
        for _ in range(3):
            repaired = fix_copies(args.root)
            print(f"repaired {repaired} copies from their homes")
            if not repaired:
                break
    problems = find_problems(args.root)
    for problem in problems:
        print(problem.message)
    if not problems:
        print("all copies equal their homes")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
