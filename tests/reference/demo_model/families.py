"""Task families of the demo-model corpus. Each family builds one task with real tool execution.

A task is a dict: family, kind (sub-family), mode ("instruct" | "thinking"), user (the user message),
setup_files {path: text} (created in the workspace before the run), messages (the reference transcript,
OpenAI-style, with reasoning_content in thinking mode) and expect {answer_contains, files, tools, no_tool}.
"""
import json
import os
import shutil
import tempfile

from demo_tools import run_tool

WORDS = ("apple banana cherry grape lemon mango melon orange peach pear plum berry kiwi lime olive onion "
         "carrot potato tomato pepper garlic ginger river ocean forest desert island valley mountain cloud "
         "storm rain snow wind sun moon star planet rocket engine robot pixel signal vector matrix kernel "
         "tensor socket packet router server client cache buffer thread window mirror candle pencil paper "
         "letter number circle square bridge tunnel garden castle tower market school library museum "
         "doctor pilot farmer painter singer dancer writer teacher red blue green yellow purple silver "
         "golden black white happy quiet brave clever gentle rapid simple bright dark early late hello "
         "world python code data file note task list table chair door lamp clock phone music movie story").split()
STEMS = ("notes data report result output summary todo log draft answer config list items values "
         "numbers names words message memo journal plan budget scores inventory").split()
EXTS = ["txt", "txt", "txt", "md", "csv", "log"]
DIRS = ["docs", "src", "out", "tmp", "logs", "data", "notes", "build"]
CAPITALS = {"France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
            "China": "Beijing", "India": "New Delhi", "Canada": "Ottawa", "Brazil": "Brasilia",
            "Egypt": "Cairo", "Kenya": "Nairobi", "Norway": "Oslo", "Sweden": "Stockholm", "Poland": "Warsaw",
            "Greece": "Athens", "Portugal": "Lisbon", "Austria": "Vienna", "Ireland": "Dublin",
            "Russia": "Moscow", "Mexico": "Mexico City", "Peru": "Lima", "Chile": "Santiago",
            "Argentina": "Buenos Aires", "Australia": "Canberra", "Turkey": "Ankara", "Finland": "Helsinki",
            "Denmark": "Copenhagen", "Belgium": "Brussels", "Netherlands": "Amsterdam", "Cuba": "Havana",
            "Vietnam": "Hanoi", "Thailand": "Bangkok", "South Korea": "Seoul", "Hungary": "Budapest"}
TOOL_NAMES = "python, shell, read_file, write_file, edit_file, list_dir and grep"


class Workspace:
    """A temporary workspace where calls really run; collects the transcript."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="qnext-demo-")

    def put(self, setup_files):
        for path, text in setup_files.items():
            full = os.path.join(self.dir, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8") as f:
                f.write(text)

    def call(self, messages, calls, thinking, reasoning):
        """Appends one assistant turn with `calls` [(name, args)], runs them, appends the tool messages."""
        msg = {"role": "assistant", "content": "",
               "tool_calls": [{"type": "function", "function": {"name": n, "arguments": a}} for n, a in calls]}
        if thinking:
            msg["reasoning_content"] = reasoning
        messages.append(msg)
        results = []
        for name, args in calls:
            out = run_tool(self.dir, name, args)
            messages.append({"role": "tool", "name": name, "content": out})
            results.append(out)
        return results

    def read(self, path):
        with open(os.path.join(self.dir, path), encoding="utf-8") as f:
            return f.read()

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def answer(messages, text, thinking, reasoning):
    msg = {"role": "assistant", "content": text}
    if thinking:
        msg["reasoning_content"] = reasoning
    messages.append(msg)


# Copy practice (training only, see gen_data.practice_task): the reversed, upper-case and title-case forms of WORDS
# are rare whole BPE tokens that the held-out reversal and case tasks must copy; practice transcripts draw their
# strings from this pool, so those tokens are also copied in every other kind of task (file texts, sorting, ...).
FORMS = ([w[::-1] for w in WORDS] * 2 + [w.upper() for w in WORDS] + [w.title() for w in WORDS])
PRACTICE_POOL = WORDS + FORMS


def words(rng, lo, hi):
    """lo..hi words from the task's word pool (make_task's `pool`: WORDS unless it is a practice task)."""
    pool = getattr(rng, "word_pool", WORDS)
    return " ".join(rng.choice(pool) for _ in range(rng.randint(lo, hi)))


def fname(rng):
    return f"{rng.choice(STEMS)}{rng.choice(['', '', '_' + str(rng.randint(1, 99))])}.{rng.choice(EXTS)}"


def py(code):
    return ("python", {"code": code})


# ---------------------------------------------------------------------------------------------- families
def fam_arith(rng, ws, m, th):
    k = rng.choice(["binop", "binop", "binop", "mod", "div", "pow", "sum", "max", "min", "fact", "gcd", "prime"])
    if k == "binop":
        op = rng.choice(["+", "-", "*"])
        a, b = rng.randint(2, 9999), rng.randint(2, 999 if op == "*" else 9999)
        expr = f"{a} {op} {b}"
        user = rng.choice([f"What is {expr}?", f"Compute {expr}.", f"Calculate {expr}, please.",
                           f"Use python to find {expr}.", f"what's {expr}"])
        code, desc = f"print({expr})", f"the value of {expr}"
        fmt = lambda r: f"{expr} = {r}."
    elif k in ("mod", "div"):
        a, b = rng.randint(10, 99999), rng.randint(2, 99)
        if k == "mod":
            user = rng.choice([f"What is {a} mod {b}?", f"What is the remainder of {a} divided by {b}?"])
            code, desc, fmt = f"print({a} % {b})", f"{a} mod {b}", lambda r: f"The remainder of {a} divided by {b} is {r}."
        else:
            user = rng.choice([f"What is {a} divided by {b}, rounded down?", f"Integer-divide {a} by {b}."])
            code, desc, fmt = f"print({a} // {b})", f"{a} // {b}", lambda r: f"{a} divided by {b}, rounded down, is {r}."
    elif k == "pow":
        a, b = rng.randint(2, 20), rng.randint(2, 9)
        user = rng.choice([f"What is {a} to the power of {b}?", f"Compute {a}^{b}."])
        code, desc, fmt = f"print({a} ** {b})", f"{a} to the power {b}", lambda r: f"{a} to the power of {b} is {r}."
    elif k in ("sum", "max", "min"):
        xs = [rng.randint(1, 999) for _ in range(rng.randint(3, 6))]
        lst = ", ".join(map(str, xs[:-1])) + " and " + str(xs[-1])
        word = {"sum": "sum", "max": "largest", "min": "smallest"}[k]
        user = rng.choice([f"What is the {word} of {lst}?", f"Find the {word} of these numbers: {', '.join(map(str, xs))}."])
        code = f"print({k}([{', '.join(map(str, xs))}]))"
        desc, fmt = f"the {word} of the numbers", lambda r: f"The {word} is {r}."
    elif k == "fact":
        n = rng.randint(3, 20)
        user = rng.choice([f"What is {n} factorial?", f"Compute {n}!"])
        code, desc, fmt = f"import math\nprint(math.factorial({n}))", f"{n}!", lambda r: f"{n}! = {r}."
    elif k == "gcd":
        a, b = rng.randint(10, 9999), rng.randint(10, 9999)
        user = f"What is the greatest common divisor of {a} and {b}?"
        code, desc, fmt = f"import math\nprint(math.gcd({a}, {b}))", f"gcd({a}, {b})", lambda r: f"The greatest common divisor of {a} and {b} is {r}."
    else:
        n = rng.randint(2, 9999)
        user = rng.choice([f"Is {n} a prime number?", f"Is {n} prime?"])
        code = f"n = {n}\nprint(n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1)))"
        desc = f"whether {n} is prime"
        fmt = lambda r: f"Yes, {n} is a prime number." if r == "True" else f"No, {n} is not a prime number."
    m.append({"role": "user", "content": user})
    (r,) = ws.call(m, [py(code)], th, f"The user wants {desc}. I will compute it with python.")
    text = fmt(r)
    answer(m, text, th, f"The tool printed {r}.")
    want = [text.rstrip(".")] if k != "prime" else [f"{n} is a prime" if r == "True" else f"{n} is not a prime"]
    return k, user, {"answer_contains": want, "tools": ["python"]}


def fam_string(rng, ws, m, th):
    k = rng.choice(["reverse", "count", "upper", "lower", "sort", "length", "words"])
    s = words(rng, 1, 3)
    if k == "reverse":
        user = rng.choice([f"Reverse the string '{s}'.", f"What is '{s}' written backwards?"])
        code, fmt = f"print('{s}'[::-1])", lambda r: f"The reversed string is '{r}'."
    elif k == "count":
        c = rng.choice(sorted(set(s.replace(" ", ""))) + ["a", "e", "o"])
        user = rng.choice([f"How many times does the letter '{c}' appear in '{s}'?", f"Count the letter '{c}' in '{s}'."])
        code, fmt = f"print('{s}'.count('{c}'))", lambda r: f"The letter '{c}' appears {r} times in '{s}'."
    elif k in ("upper", "lower"):
        if k == "lower":
            s = s.upper() if rng.random() < 0.5 else s.title()
        user = rng.choice([f"Convert '{s}' to {k}case.", f"Make '{s}' all {k}case."])
        code, fmt = f"print('{s}'.{k}())", lambda r: f"In {k}case: '{r}'."
    elif k == "sort":
        s = words(rng, 3, 5)
        user = rng.choice([f"Sort these words alphabetically: {s}", f"Put the words '{s}' in alphabetical order."])
        code, fmt = f"print(' '.join(sorted('{s}'.split())))", lambda r: f"Sorted: {r}"
    elif k == "length":
        user = rng.choice([f"How many characters are in '{s}'?", f"What is the length of the string '{s}'?"])
        code, fmt = f"print(len('{s}'))", lambda r: f"'{s}' has {r} characters."
    else:
        s = words(rng, 2, 7)
        user = f"How many words are in '{s}'?"
        code, fmt = f"print(len('{s}'.split()))", lambda r: f"There are {r} words."
    m.append({"role": "user", "content": user})
    (r,) = ws.call(m, [py(code)], th, f"This is a string task ({k}). I will let python do it exactly.")
    answer(m, fmt(r), th, f"python printed {r}.")
    key = {"count": f"appears {r} times", "sort": f"Sorted: {r}", "length": f"has {r} characters",
           "words": f"There are {r} words"}.get(k, f"'{r}'")
    return k, user, {"answer_contains": [key], "tools": ["python"]}


def fam_file(rng, ws, m, th, setup):
    k = rng.choice(["write", "write", "read", "read", "list", "list_sub"])
    if k == "write":
        f, text = fname(rng), words(rng, 1, 6)
        user = rng.choice([f"Create a file called {f} with the text: {text}", f"Write '{text}' to {f}.",
                           f"Save the text '{text}' in a file named {f}."])
        m.append({"role": "user", "content": user})
        (r,) = ws.call(m, [("write_file", {"path": f, "content": text})], th, f"I need to write the text to {f}.")
        answer(m, f"Done: {r}.", th, "The file was written.")
        return k, user, {"answer_contains": [f], "files": {f: text}, "tools": ["write_file"]}
    if k == "read":
        f = fname(rng)
        setup[f] = "\n".join(words(rng, 1, 5) for _ in range(rng.randint(1, 3)))
        for _ in range(rng.randint(0, 2)):
            setup.setdefault(fname(rng), words(rng, 1, 4))
        ws.put(setup)
        user = rng.choice([f"What is in {f}?", f"Show me the contents of {f}.", f"Read {f}.", f"What does {f} say?"])
        m.append({"role": "user", "content": user})
        (r,) = ws.call(m, [("read_file", {"path": f})], th, f"I will read {f}.")
        answer(m, f"{f} contains:\n{r}", th, "I have the file text.")
        return k, user, {"answer_contains": [setup[f]], "tools": ["read_file"]}
    if k == "list":
        for _ in range(rng.randint(1, 4)):
            setup[fname(rng)] = words(rng, 1, 3)
        if rng.random() < 0.4:
            setup[f"{rng.choice(DIRS)}/{fname(rng)}"] = words(rng, 1, 3)
        path = "."
        user = rng.choice(["What files are in the workspace?", "List the files in the current directory.",
                           "Which files do I have?", "Show me the workspace contents."])
    else:
        d = rng.choice(DIRS)
        for _ in range(rng.randint(1, 4)):
            setup[f"{d}/{fname(rng)}"] = words(rng, 1, 3)
        setup.setdefault(fname(rng), words(rng, 1, 3))
        path = d
        user = rng.choice([f"What is in the folder {d}?", f"List the files in {d}.", f"What does the {d} directory contain?"])
    ws.put(setup)
    m.append({"role": "user", "content": user})
    (r,) = ws.call(m, [("list_dir", {"path": path})], th, f"I will list the directory {path}.")
    entries = r.split("\n")
    where = "The workspace" if path == "." else f"The folder {path}"
    answer(m, f"{where} contains: {', '.join(entries)}.", th, f"There are {len(entries)} entries.")
    return k, user, {"answer_contains": entries, "tools": ["list_dir"]}


def fam_two_step(rng, ws, m, th):
    f = fname(rng)
    if rng.random() < 0.6:
        a, b = rng.randint(2, 999), rng.randint(2, 999)
        op = rng.choice(["+", "*", "-"])
        what = f"{a} {op} {b}"
        user = rng.choice([f"Compute {what} and save the result to {f}.", f"Calculate {what}, then write the answer to {f}."])
        code = f"print({what})"
        fmt = "{}"  # the number, as printed
    else:
        s = words(rng, 1, 3)
        # quoted as in the user message and the tool output: `'river` or ` edoc` would be other (rarer) tokens
        what = f"The reverse of '{s}'"
        user = rng.choice([f"Reverse '{s}' and save it to {f}.", f"Write the reverse of '{s}' into {f}."])
        code = f"print('{s}'[::-1])"
        fmt = "'{}'"  # the reversed string, quoted
    m.append({"role": "user", "content": user})
    (r,) = ws.call(m, [py(code)], th, "First I compute the value with python, then I save it.")
    (w,) = ws.call(m, [("write_file", {"path": f, "content": r})], th, f"The value is {r}. Now I write it to {f}.")
    shown = fmt.format(r)
    answer(m, f"{what} is {shown}. I saved it to {f}.", th, "Both steps are done.")
    return "compute_save", user, {"answer_contains": [f"is {shown}.", f], "files": {f: r},
                                  "tools": ["python", "write_file"]}


def fam_parallel(rng, ws, m, th, setup):
    k = rng.choice(["two_arith", "arith_string", "two_reads"])
    if k == "two_reads":
        f1, f2 = fname(rng), fname(rng)
        while f2 == f1:
            f2 = fname(rng)
        setup[f1], setup[f2] = words(rng, 1, 4), words(rng, 1, 4)
        ws.put(setup)
        user = rng.choice([f"Read {f1} and {f2}.", f"What do {f1} and {f2} contain?"])
        m.append({"role": "user", "content": user})
        r1, r2 = ws.call(m, [("read_file", {"path": f1}), ("read_file", {"path": f2})], th,
                         "The two files are independent, so I read both at once.")
        answer(m, f"{f1} contains: {r1}\n{f2} contains: {r2}", th, "I have both files.")
        return k, user, {"answer_contains": [r1, r2], "tools": ["read_file", "read_file"]}
    a, b, c, d = (rng.randint(2, 999) for _ in range(4))
    o1, o2 = rng.choice(["+", "-", "*"]), rng.choice(["+", "-", "*"])
    e1 = f"{a} {o1} {b}"
    if k == "two_arith":
        e2 = f"{c} {o2} {d}"
        user = rng.choice([f"What is {e1}, and what is {e2}?", f"Compute {e1} and {e2}."])
        calls = [py(f"print({e1})"), py(f"print({e2})")]
        r1, r2 = ws.call(m_user(m, user), calls, th, "These are two independent computations, so I run both at once.")
        text = f"{e1} = {r1} and {e2} = {r2}."
    else:
        s = words(rng, 1, 2)
        user = rng.choice([f"What is {e1}, and what is '{s}' reversed?", f"Compute {e1} and reverse '{s}'."])
        calls = [py(f"print({e1})"), py(f"print('{s}'[::-1])")]
        r1, r2 = ws.call(m_user(m, user), calls, th, "These are two independent tasks, so I run both at once.")
        text = f"{e1} = {r1}, and '{s}' reversed is '{r2}'."
    answer(m, text, th, f"The results are {r1} and {r2}.")
    return k, user, {"answer_contains": [f"{e1} = {r1}", f"{r2}"], "tools": ["python", "python"]}


def m_user(m, user):
    m.append({"role": "user", "content": user})
    return m


def fam_error(rng, ws, m, th):
    k = rng.choice(["typo", "paren", "import"])
    a, b = rng.randint(2, 999), rng.randint(2, 999)
    if k == "typo":
        bad, good, why = f"prnt({a} + {b})", f"print({a} + {b})", "The code had a typo: prnt should be print."
    elif k == "paren":
        bad, good, why = f"print({a} * {b}", f"print({a} * {b})", "The code was missing a closing parenthesis."
    else:
        bad, good, why = f"print(math.sqrt({a * a}))", f"import math\nprint(math.sqrt({a * a}))", "The code needed import math."
    user = rng.choice([f"Run this Python code: {bad}", f"What does this code print? {bad}", f"Execute: {bad}"])
    m.append({"role": "user", "content": user})
    (e,) = ws.call(m, [py(bad)], th, "I will run the code exactly as given.")
    assert "exit code: 1" in e, e
    (r,) = ws.call(m, [py(good)], th, f"It failed. {why} I will fix it and run it again.")
    answer(m, f"{why} After fixing it, the code prints {r}.", th, f"The fixed code printed {r}.")
    return k, user, {"answer_contains": [f"prints {r}."], "tools": ["python", "python"]}


def fam_no_tool(rng, ws, m, th):
    k = rng.choice(["greet", "thanks", "who", "tools", "capital", "capital", "capital"])
    if k == "greet":
        user = rng.choice(["Hi", "Hello!", "Hey there", "Good morning", "hello", "Hi, how are you?"])
        text = "Hello! I can run Python code and work with files in your workspace. What would you like me to do?"
        want = ["Hello"]
    elif k == "thanks":
        user = rng.choice(["Thanks!", "Thank you.", "thanks a lot", "Great, thank you!"])
        text, want = "You're welcome! Let me know if you need anything else.", ["welcome"]
    elif k == "who":
        user = rng.choice(["Who are you?", "What are you?", "What can you do?"])
        text = "I am a small demo assistant for qnext. I can run Python code and read, write and list files."
        want = ["demo assistant"]
    elif k == "tools":
        user = rng.choice(["What tools can you use?", "Which tools do you have?", "List your tools."])
        text, want = f"I can use these tools: {TOOL_NAMES}.", ["python"]
    else:
        country = rng.choice(sorted(CAPITALS))
        user = rng.choice([f"What is the capital of {country}?", f"What's the capital city of {country}?"])
        text, want = f"The capital of {country} is {CAPITALS[country]}.", [CAPITALS[country]]
    m.append({"role": "user", "content": user})
    answer(m, text, th, "This needs no tool; I can answer directly.")
    return k, user, {"answer_contains": want, "tools": [], "no_tool": True}


FAMILIES = {"arith": 0.2, "string": 0.18, "file": 0.18, "two_step": 0.12, "parallel": 0.12,
            "error": 0.1, "no_tool": 0.1}


def make_task(rng, family, thinking, pool=None):
    """One task of `family`; `pool` replaces WORDS as the source of its strings (copy practice)."""
    if pool is not None:
        rng.word_pool = pool
    setup = {}  # filled by the file families, then written with ws.put before the run
    ws = Workspace()
    m = []
    try:
        if family == "file":
            kind, user, expect = fam_file(rng, ws, m, thinking, setup)
        elif family == "parallel":
            kind, user, expect = fam_parallel(rng, ws, m, thinking, setup)
        else:
            fn = {"arith": fam_arith, "string": fam_string, "two_step": fam_two_step, "error": fam_error,
                  "no_tool": fam_no_tool}[family]
            kind, user, expect = fn(rng, ws, m, thinking)
        for path in expect.get("files", {}):
            assert ws.read(path) == expect["files"][path]
    finally:
        ws.close()
    expect.setdefault("files", {})
    expect.setdefault("no_tool", False)
    return {"family": family, "kind": kind, "mode": "thinking" if thinking else "instruct", "user": user,
            "setup_files": setup, "expect": expect, "messages": m}


def dumps(x):
    return json.dumps(x, ensure_ascii=False)
