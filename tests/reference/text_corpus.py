"""Corpus builders for make_text_golden.py: tokenizer strings and chat requests (deterministic)."""
import copy
import json
import random

CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "class Foo(Base):\n\tdef __init__(self, x: int = 0) -> None:\n\t\tself._x = x  # comment\n",
    "#include <vector>\nint main() {\n  std::vector<int> v{1, 2, 3};\n  for (auto& x : v) x *= 2;\n  return 0;\n}\n",
    "fn main() {\n    let s: String = \"héllo\".to_owned();\n    println!(\"{s:?}\");\n}\n",
    "const f = async (a, b) => { await fetch(`/api/${a}?q=${b}`); return a ?? b; };\n",
    "func (s *Server) Handle(w http.ResponseWriter, r *http.Request) {\n\tif err != nil {\n\t\treturn\n\t}\n}\n",
    "SELECT u.id, COUNT(*) AS n FROM users u JOIN orders o ON o.user_id = u.id WHERE u.age >= 18 GROUP BY u.id;\n",
    "<!DOCTYPE html>\n<html lang=\"en\">\n  <body><p class='x'>Hi &amp; bye</p></body>\n</html>\n",
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\" | tr a-z A-Z; done 2>&1 | tee log\n",
    "{\"name\": \"qnext\", \"version\": \"0.1.0\", \"deps\": [\"re2\", \"utf8proc\"], \"n\": 3.5e-7}\n",
    "key: value\nlist:\n  - a\n  - b: [1, 2]\n    c: 'quoted'   \n",
    "    if (x != y && !z) { y <<= 2; z ||= x; }   \n\n\n",
    "x = [i**2 for i in range(10) if i % 2 == 0]\r\nprint(x)\r\n",
    "\t\t\treturn std::make_unique<Impl>(std::move(args)...);\n",
    "// TODO(user): fix   this\n/* multi\n   line */\n",
    "$ git commit -m 'fix: don't crash on empty input'\n",
]

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! How are you doing today?",
    "It's a truth universally acknowledged that a single man in possession of a good fortune must be in want of a wife.",
    "Dr. Smith's lab (room 4B) opened at 9:30 a.m. on Jan. 5th, 2024 — finally!",
    "She said: \"I'll be there.\" He replied: 'We'd better hurry...'",
    "e-mail: john.doe@example.com; URL: https://example.org/path?x=1&y=2#frag",
    "Prices rose 3.5% to $1,234.56 (≈ €1.1k) in Q3.",
    "   leading spaces and trailing spaces   ",
    "UPPER CASE SHOUTING AND MiXeD cAsE wOrDs",
    "naïve café résumé coöperate façade jalapeño",
]

WORLD = [
    "我们今天去公园散步，天气非常好。", "人工智能正在改变世界。", "日本語のテキストを処理します。東京は大きい都市です。",
    "カタカナとひらがなが混ざった文章。", "한국어 문장입니다. 안녕하세요!", "مرحبا بالعالم، كيف حالك اليوم؟",
    "اللغة العربية جميلة جداً.", "नमस्ते दुनिया, आप कैसे हैं?", "हिन्दी में लिखा गया वाक्य।", "สวัสดีครับ วันนี้อากาศดีมาก",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ", "Привет, мир! Как дела?", "Γειά σου Κόσμε", "שלום עולם", "Xin chào thế giới, tiếng Việt có dấu.",
    "Ελληνικά και русский и English together", "ᚠᛇᚻ᛫ᛒᛦᚦ", "ꯃꯅꯤꯄꯨꯔ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙 𝑥²+𝑦²",
]

EMOJI = [
    "👨‍👩‍👧‍👦", "👍🏽", "👩🏿‍💻", "🏳️‍🌈", "🇯🇵🇺🇸", "1️⃣", "❤️‍🔥", "🧑🏻‍🤝‍🧑🏿", "😀😃😄😁", "🤖 robots", "✨🎉🎊",
    "👁️‍🗨️", "🫠🫡🫥", "☕️", "©️®️™️",
]

NFC = [
    "e\u0301", "A\u030a", "\u212b", "\u2126", "n\u0303o", "a\u0308\u0301", "A\u0301\u0327", "\u1100\u1161\u11a8",
    "\u1112\u1161\u11ab\u1100\u1173\u11af", "\u1e9b\u0323", "cafe\u0301", "\u0041\u030a\u0301", "o\u0328\u0304",
    "\u0915\u093c", "\u00c5\u0301", "\u03a9\u0301", "\u1f00\u0345", "e\u0301\u0301\u0301", "\u0301leading",
    "x\u20d7", "\u3099\u304b\u3099", "\u304b\u3099", "\u30cf\u309a", "\uff76\uff9e",
]

WHITESPACE = [
    " ", "  ", "\t", "\n", "\r\n", "\r", "\n\n\n", " \n", "\n ", "  \n  ", "\t\t\t", " \t \t", "\r\n\r\n",
    "   \r\n   ", "\u00a0", "\u3000", "\u2028", "\u2029", "\u0085", "\x0b", "\x0c", " \u00a0 ", "\u2003\u2003",
    "word   ", "word \n", "hello  !", "hello \t!", "a , b", "x  .", "  ?", "\n\n!", "end.  \n\n  ",
]

DIGITS = [
    "12345678901234567890", "3.14159265358979", "1,000,000", "0x1F3A", "2024-01-31", "+1 (555) 123-4567",
    "٣٤٥٦", "१२३४", "①②③", "Ⅻ", "½¾", "10^9+7", "1e-10", "99999999999999999999999999999999",
]

CONTRACTIONS = [
    "I'M", "don'T", "We'Re", "they'VE", "she'LL", "He'D", "it'S", "'ſ", "y'all", "rock'n'roll", "I'm", "can't",
    "'s", "'S'", "''", "'", "O'Neil's", "we'd've", "'LL'RE", "it\u2019s", "x'M", "\"'re\"", " 'd", "'\n",
]

ADDED = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
    "<tool_response>", "</tool_response>", "<|fim_prefix|>", "<|vision_start|>", "<|im_start", "im_end|>",
    "<|im_end|><|im_end|>", "<think><think>", " <|im_start|> ", "<|<|im_start|>|>", "<|endoftext|>\n",
]

TRICKY = [" ", "  ", "\t", "\n", "\r", "a", "Z", "1", "٣", "!", ".", "'", "s", "S", "t", "re", "é", "中", "\u00a0",
          "\u3000", "😀", "\u0301", "_", "-", "ſ", "\u2028", "\x0b", "\x85", "ll", "<", "|", ">", "\u200d", "\ufeff",
          "\x00", "\x7f", "ǅ", "ʰ", "ㄱ", "\ufffd"]

INVALID = [
    b"\xff", b"abc\xc3", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xf0\x9f\x98",
    b"ok \xf0\x9f\x98 ok", b"\x80\x80\x80", b"\xc3\x28", b"\xe2\x82", b"\xe2\x82\x28", b"\xfe\xfe\xff\xff",
    b"\xf8\x88\x80\x80\x80", b"a\xedb", b"\xef\xbf\xbd", b"\xc2", b"hello\xffworld",
]


def byte_level_alphabet():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def random_codepoints(rng, k):
    out = []
    for _ in range(k):
        r = rng.random()
        if r < 0.3:
            c = rng.randrange(0x20, 0x3000)
        elif r < 0.5:
            c = rng.randrange(0x4E00, 0xA000)
        elif r < 0.7:
            c = rng.randrange(0xA000, 0x20000)
        else:
            c = rng.randrange(0x20000, 0x110000)
        if 0xD800 <= c < 0xE000:
            c = 0x41
        out.append(chr(c))
    return "".join(out)


def tokenizer_strings(rng):
    base = [""] + CODE + PROSE + WORLD + EMOJI + NFC + WHITESPACE + DIGITS + CONTRACTIONS + ADDED
    pools = [CODE, PROSE, WORLD, EMOJI, NFC, WHITESPACE, DIGITS, CONTRACTIONS, ADDED]
    seps = ["", " ", "  ", "\n", "\r\n", "\t", " \n\n", ", ", "   "]
    out = list(base)
    for _ in range(1900):                        # mixtures of categories
        parts = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 5))]
        s = ""
        for p in parts:
            s += p + rng.choice(seps)
        out.append(s)
    for _ in range(800):                         # adversarial strings for the split scanner
        out.append("".join(rng.choice(TRICKY) for _ in range(rng.randint(1, 30))))
    for _ in range(200):                         # random code points, incl. recently assigned ones
        out.append(random_codepoints(rng, rng.randint(1, 20)))
    for _ in range(60):                          # long inputs
        out.append("".join(rng.choice(CODE + PROSE + WORLD) for _ in range(rng.randint(5, 15))))
    out.append("a" * 3000)
    out.append(" " * 500 + "x")
    out.append("9" * 1000)
    out.extend(INVALID)
    for _ in range(150):                         # invalid UTF-8 through the byte API
        raw = bytearray(rng.choice(PROSE + WORLD + EMOJI).encode())
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(0, len(raw) + 1)
            raw[pos:pos] = bytes([rng.randrange(0x80, 0x100)])
        if rng.random() < 0.5 and len(raw) > 2:
            raw = raw[: rng.randrange(1, len(raw))]   # truncate, possibly mid-character
        out.append(bytes(raw))
    return out


# ---------------------------------------------------------------------------------------------
# Chat requests

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city.",
                                      "parameters": {"type": "object", "properties": {
                                          "city": {"type": "string", "description": "City name, e.g. Zürich"},
                                          "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "run_shell", "description": "Run a command; returns \"stdout\".",
                                      "parameters": {"type": "object", "properties": {
                                          "cmd": {"type": "string"}, "timeout": {"type": "number", "default": 2.5}},
                                          "required": ["cmd"]}}},
    {"type": "function", "function": {"name": "search", "description": "検索する\nmultiline\tdesc",
                                      "parameters": {"type": "object", "properties": {"q": {"type": "string"},
                                                                                     "k": {"type": "integer", "minimum": 1, "maximum": 100}}}}},
    {"name": "flat_tool", "description": "a tool without the function wrapper", "parameters": {}},
]

TEXTS = ["Hi!", "What's the weather in Paris?", "Explain BPE in one line.", "日本語で答えてください。", "",
         "Line one\nLine two\n", "  padded  ", "Use <tool_call> literally", "quote \" and \\ backslash",
         "emoji 👍🏽 and tab\there", "\n\nleading newlines", "trailing newlines\n\n", "{\"json\": true}"]
REASONING = ["Let me think.", "\nStep 1: look.\nStep 2: answer.\n", "", "思考中……", "\n\n", "A <think> inside"]
ARGS = [{"city": "Paris"}, {"city": "Zürich", "unit": "c"}, {"cmd": "ls -la | head", "timeout": 0.5},
        {"q": "naïve \"quoted\"", "k": 3}, {}, {"nested": {"a": [1, 2.0, None, True, False], "b": {"c": "d"}}},
        {"x": 1e-07, "y": 1e16, "z": -0.0, "w": 123456789.125, "v": 2.5e+20, "u": 0.1},
        {"ctrl": "a\u0001b\u001f\n\t\r\b\f", "del": "\u007f", "ls": "\u2028"}, {"list": []}]


def tool_call(rng):
    name = rng.choice(["get_weather", "run_shell", "search", "flat_tool"])
    args = copy.deepcopy(rng.choice(ARGS))
    if rng.random() < 0.35:
        args = json.dumps(args, ensure_ascii=rng.random() < 0.5)   # string arguments
    if rng.random() < 0.75:
        call = {"type": "function", "function": {"name": name, "arguments": args}}
        if rng.random() < 0.3:
            call = {"id": f"call_{rng.randrange(1000)}", **call}
        return call
    return {"name": name, "arguments": args}


def assistant(rng, kind):
    m = {"role": "assistant"}
    r = rng.random()
    text = rng.choice(TEXTS)
    if r < 0.2:
        reasoning = rng.choice(REASONING)
        nl = rng.choice(["", "\n", "\n\n"])
        text = f"<think>{nl}{reasoning}{nl}</think>{nl}{text}"
    elif r < 0.25:
        text = f"prefix</think>{text}</think>tail"      # several </think>: split()[0] / [-1] differ
    m["content"] = text
    r = rng.random()
    if r < 0.3:
        m["reasoning_content"] = rng.choice(REASONING)
    elif r < 0.35:
        m["reasoning_content"] = None
    elif r < 0.4:
        m["reasoning"] = rng.choice(REASONING)
    elif r < 0.43:
        m["thinking"] = rng.choice(REASONING)
    if rng.random() < 0.35:
        m["tool_calls"] = [tool_call(rng) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            m["content"] = ""
    if kind != "hybrid" and rng.random() < 0.08:
        m["content"] = rng.choice([None, [{"type": "text", "text": "list content"}]])
    return m


def conversation(rng, kind):
    msgs = []
    if rng.random() < 0.5:
        msgs.append({"role": "system", "content": rng.choice(["You are a helpful assistant.", "", "系统提示\n多行"])})
    turns = rng.randint(1, 4)
    for t in range(turns):
        r = rng.random()
        if r < 0.1:
            u = "<tool_response>\nfake\n</tool_response>"
        elif r < 0.15 and kind != "hybrid":
            u = [{"type": "text", "text": "multimodal"}]
        else:
            u = rng.choice(TEXTS)
        msgs.append({"role": "user", "content": u})
        if rng.random() < 0.05:
            msgs.append({"role": "system", "content": "mid-conversation system note"})
        if t == turns - 1 and rng.random() < 0.35:
            break                                        # ends on a user turn
        a = assistant(rng, kind)
        msgs.append(a)
        if "tool_calls" in a:
            for _ in range(rng.randint(1, len(a["tool_calls"]) + 1)):
                msgs.append({"role": "tool", "content": rng.choice(["42", "{\"temp\": 21.5}", "", "line\nline", "エラー"])})
            if rng.random() < 0.6:
                msgs.append(assistant(rng, kind))
    if rng.random() < 0.05:
        msgs.append({"role": "developer", "content": "unknown role is skipped"})
    return msgs


def chat_requests(rng, kind):
    reqs = []
    for i in range(150):
        req = {"messages": conversation(rng, kind)}
        r = rng.random()
        if r < 0.4:
            req["tools"] = rng.sample(TOOLS, rng.randint(1, len(TOOLS)))
        elif r < 0.45:
            req["tools"] = []
        req["add_generation_prompt"] = rng.random() < 0.6
        r = rng.random()
        if r < 0.35:
            req["enable_thinking"] = False
        elif r < 0.6:
            req["enable_thinking"] = True
        reqs.append(req)
    # fixed edge cases
    reqs.append({"messages": [], "add_generation_prompt": True})
    reqs.append({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], "add_generation_prompt": True})
    reqs.append({"messages": [{"role": "tool", "content": "first"}, {"role": "tool", "content": "second"}]})
    reqs.append({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning_content": "r"}]})
    reqs.append({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning_content": "r"},
                              {"role": "user", "content": "<tool_response>x</tool_response>"},
                              {"role": "assistant", "content": "<think>deep</think>b"}], "tools": TOOLS[:1]})
    reqs.append({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None,
                              "tool_calls": [tool_call(rng)]}]})            # null content (hybrid: jinja error)
    reqs.append({"messages": [{"role": "system", "content": None}, {"role": "user", "content": "q"}]})   # error
    reqs.append({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x",
                              "reasoning_content": 5}]})
    return reqs
