"Write one benchmark's section of benchmarks/RESULTS.md between its markers, leaving the other sections alone."
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / 'RESULTS.md'
TITLE = '# Benchmarks\n\nFigures measured by the scripts in this folder; each section names its machine, date and command.\n'


def write_section(name: str, text: str, path: Path = RESULTS) -> str:
    "Replace (or append) the section `name` of RESULTS.md with `text`; return the section written."
    begin, end = f'<!-- {name}:begin -->', f'<!-- {name}:end -->'
    section = f'{begin}\n{text.strip()}\n{end}\n'
    old = path.read_text() if path.exists() else TITLE
    if begin in old and end in old:
        new = old[:old.index(begin)] + section + old[old.index(end) + len(end):].lstrip('\n')
    else:
        new = old.rstrip('\n') + '\n\n' + section
    path.write_text(new)
    return section


def publish(section: str, lines: list, path: Path = RESULTS) -> str:
    "Write `lines` as `section` of RESULTS.md, and print them."
    text = '\n'.join(lines)
    write_section(section, text, path)
    print(text)
    return text
