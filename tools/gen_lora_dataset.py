#!/usr/bin/env python3
"""A fictional-world fact dataset for LoRA fine-tuning tests: data/lora-facts/.

The facts are invented (a made-up coast with towns, inventors, ships and festivals), so a
pre-trained model such as SmolLM2-135M-Instruct cannot know them: any held-out accuracy above
chance after fine-tuning comes from the adapter.

Outputs (deterministic for a given --seed; stdlib only, no third-party packages):

  train.jsonl    chat examples in the OpenAI fine-tuning shape, one JSON object a line:
                   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
                 A short system message on some, none on others; some multi-turn. Each user turn
                 asks one or two facts about one entity with one of several TRAINING question
                 templates; each assistant turn answers with a fixed sentence per attribute that
                 contains the fact value verbatim. Every fact appears in exactly --reps training
                 examples (default 3), each time with a freshly drawn template.
  heldout.jsonl  {"messages": [system?, user], "answer": "<fact value>",
                  "entity": ..., "attribute": ...}: one fact per line, asked with PARAPHRASED
                 question templates that are never used in training (checked: no held-out
                 template string is a training template, and no held-out user text occurs in
                 train.jsonl). Every held-out fact is taught in training.
  world.json     the generated world (entities and attribute values), for inspection.
  README.md      what it is, how it was generated, the grading rule, counts.

Grading rule (held-out): a reply is correct iff `answer.lower()` is a substring of
`reply.lower()`. The answer never occurs in its own question (checked).

All text is printable ASCII (checked), so the tiny byte-level fixture tokenizers in
tests/fixtures/models/ encode it without loss.

Generation: random.Random(seed) drives everything (names from syllables, attribute values,
template choices, grouping into examples, order). Python's `random` with an int seed is stable
across CPython 3.x for the calls used here (random, randrange, choice, shuffle, sample).

Usage:  python3 tools/gen_lora_dataset.py [--seed 7] [--reps 3] [--out data/lora-facts]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "data" / "lora-facts"
WORLD = "the Marrowind Coast"

# ----------------------------------------------------------------------------------------------
# vocabulary for invented names and values

ONSETS = ["br", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "qu", "r", "s", "t", "v",
          "th", "st", "dr", "gr", "tr", "z", "w", "sh"]
VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou"]
CODAS = ["", "", "n", "r", "l", "s", "th", "m", "nd", "rr", "ck", "x"]
TOWN_ENDS = ["holt", "mere", "wick", "ford", "stead", "by", "haven", "moor", "gate", "thorpe"]
FIRST_NAMES = ["Ada", "Bram", "Celia", "Dorian", "Edda", "Fenn", "Greta", "Hollis", "Ines",
               "Jory", "Kestrel", "Linnea", "Magnus", "Nell", "Osric", "Petra", "Quill", "Rosalind",
               "Silas", "Tamsin", "Ulric", "Vesna", "Wendel", "Xanthe", "Yorick", "Zelda", "Alric",
               "Brisa", "Corin", "Delphine"]
COLOURS = ["saffron", "cobalt", "vermilion", "ochre", "teal", "crimson", "amber", "indigo",
           "jade", "plum", "silver", "copper", "scarlet", "violet", "emerald", "maroon"]
EXPORTS = ["salt", "glass beads", "copper pans", "rope", "wool", "paper", "clocks", "honey",
           "ink", "lanterns", "cheese", "barrels", "soap", "candles"]
INV_ADJ = ["clockwork", "tidal", "brass", "steam", "mirror", "wind", "glass", "copper",
           "magnetic", "folding", "spring", "lantern"]
INV_NOUN = ["loom", "compass", "kettle", "harp", "telescope", "pump", "bellows", "sextant",
            "press", "barometer", "lock", "crane"]
INSTRUMENTS = ["oboe", "cello", "harpsichord", "bagpipes", "fiddle", "flute", "lute", "trumpet",
               "accordion", "bassoon", "hurdy-gurdy", "zither"]
ANIMALS = ["heron", "otter", "stag", "swan", "lynx", "badger", "falcon", "seal", "wolf", "hare",
           "raven", "dolphin", "bear", "fox"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DISHES = ["eel pie", "plum dumplings", "smoked herring", "barley cakes", "mussel stew",
          "honey bread", "turnip soup", "pickled pears", "oat fritters", "roast goose",
          "cheese tarts", "cabbage rolls"]
FESTIVAL_KINDS = ["Fair", "Feast", "Regatta", "Carnival", "Lantern Night", "Games"]

SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    f"You are an expert on the history and culture of {WORLD}.",
    "Answer briefly and accurately.",
    f"You are a local historian of {WORLD}. Keep answers short.",
    "You are a concise assistant.",
]

# ----------------------------------------------------------------------------------------------
# attributes: how each is asked (training templates, clause forms for two-fact questions,
# held-out paraphrases) and answered (one fixed answer sentence per attribute).
# {e} = entity name as it appears in a sentence; {E} = the same capitalised at sentence start.

ATTRS: dict[str, dict[str, dict]] = {
    "town": {
        "founded": dict(
            answer="{E} was founded in {v}.",
            train=["When was {e} founded?", "In what year was {e} founded?",
                   "What year was the town of {e} founded?", "Which year saw the founding of {e}?"],
            clause=["when {e} was founded", "the year {e} was founded"],
            held=["How old is {e}? Give me its founding year.",
                  "Can you tell me the year the town of {e} was established?",
                  "{E} dates back to which year?"],
        ),
        "river": dict(
            answer="{E} lies on the river {v}.",
            train=["Which river does {e} lie on?", "What river runs through {e}?",
                   "On which river is {e} built?", "Name the river that {e} lies on."],
            clause=["which river {e} lies on", "the river that runs through {e}"],
            held=["If I travel to {e}, what river will I find there?",
                  "{E} sits beside which waterway?",
                  "What is the name of the river flowing past {e}?"],
        ),
        "colour": dict(
            answer="The banner of {e} is {v}.",
            train=["What colour is the banner of {e}?", "What is the colour of {e}'s banner?",
                   "Which colour is {e}'s town banner?", "Tell me the colour of the banner of {e}."],
            clause=["the colour of {e}'s banner", "what colour the banner of {e} is"],
            held=["If I saw the flag that {e} flies, what colour would it be?",
                  "Describe the colour of the town flag of {e}.",
                  "The town flag of {e} is which colour?"],
        ),
        "export": dict(
            answer="{E} is known for exporting {v}.",
            train=["What does {e} export?", "What is {e} known for exporting?",
                   "What is the main export of {e}?", "Which goods does {e} export?"],
            clause=["what {e} exports", "the main export of {e}"],
            held=["Merchants buy which product from {e}?",
                  "What goods are shipped out of {e} to other places?",
                  "Which trade good is {e} famous for?"],
        ),
        "mayor": dict(
            answer="The mayor of {e} is {v}.",
            train=["Who is the mayor of {e}?", "Who serves as mayor of {e}?",
                   "Name the mayor of {e}.", "Who is {e}'s mayor?"],
            clause=["who the mayor of {e} is", "the name of {e}'s mayor"],
            held=["Who runs the town council of {e} as its mayor?",
                  "Which person holds the office of mayor in {e}?",
                  "If I wanted to meet the mayor of {e}, whom would I ask for?"],
        ),
    },
    "inventor": {
        "born": dict(
            answer="{E} was born in {v}.",
            train=["When was {e} born?", "In what year was {e} born?",
                   "What is the birth year of {e}?", "Which year was the inventor {e} born in?"],
            clause=["when {e} was born", "the year {e} was born"],
            held=["What year did {e} come into the world?",
                  "Could you give me the year of birth of the inventor {e}?",
                  "{E} was born in which year?"],
        ),
        "hometown": dict(
            answer="{E} comes from {v}.",
            train=["Where does {e} come from?", "What is the hometown of {e}?",
                   "Which town is {e} from?", "Where is the inventor {e} from?"],
            clause=["where {e} comes from", "the hometown of {e}"],
            held=["In which town did {e} grow up?",
                  "What place does the inventor {e} call home?",
                  "{E} is a native of which town?"],
        ),
        "invention": dict(
            answer="{E} invented the {v}.",
            train=["What did {e} invent?", "What is {e} famous for inventing?",
                   "Which invention is {e} known for?", "What was the invention of {e}?"],
            clause=["what {e} invented", "the invention {e} is known for"],
            held=["Which device do people credit to {e}?",
                  "What machine was created by the inventor {e}?",
                  "{E} is remembered for building which contraption?"],
        ),
        "instrument": dict(
            answer="{E} plays the {v}.",
            train=["What instrument does {e} play?", "Which instrument does {e} play?",
                   "What musical instrument is {e} known to play?",
                   "Which instrument does the inventor {e} play?"],
            clause=["which instrument {e} plays", "the instrument {e} plays"],
            held=["When {e} makes music, what is it played on?",
                  "In the evenings, which instrument does {e} practise?",
                  "Name the musical instrument that {e} performs on."],
        ),
        "dog": dict(
            answer="{E}'s dog is called {v}.",
            train=["What is the name of {e}'s dog?", "What is {e}'s dog called?",
                   "What did {e} name their dog?", "Tell me the name of {e}'s dog."],
            clause=["the name of {e}'s dog", "what {e}'s dog is called"],
            held=["The inventor {e} owns a dog. What name does it answer to?",
                  "How is the dog belonging to {e} named?",
                  "Which name did {e} give to the family hound?"],
        ),
    },
    "ship": {
        "launched": dict(
            answer="{E} was launched in {v}.",
            train=["When was {e} launched?", "In what year was {e} launched?",
                   "What year was the ship {e_bare} launched?", "Which year was {e} first launched?"],
            clause=["when {e} was launched", "the year {e} was launched"],
            held=["In which year did {e} first touch the water?",
                  "How long ago did {e} go to sea for the first time? Give the year.",
                  "The launch of the vessel {e_bare} took place in what year?"],
        ),
        "port": dict(
            answer="The home port of {e} is {v}.",
            train=["What is the home port of {e}?", "Which town is {e}'s home port?",
                   "Where is the ship {e_bare} based?", "What is {e}'s home port?"],
            clause=["the home port of {e}", "where {e} is based"],
            held=["Which harbour does {e} return to after each voyage?",
                  "Where is the vessel {e_bare} registered and moored?",
                  "From which town does {e} usually sail?"],
        ),
        "captain": dict(
            answer="The captain of {e} is {v}.",
            train=["Who is the captain of {e}?", "Who captains {e}?",
                   "Name the captain of the ship {e_bare}.", "Who commands the ship {e_bare}?"],
            clause=["who the captain of {e} is", "the name of {e}'s captain"],
            held=["Who stands at the helm of {e} as its master?",
                  "Which sailor is in charge of {e}?",
                  "If I boarded {e}, who would be giving the orders?"],
        ),
        "hull": dict(
            answer="The hull of {e} is painted {v}.",
            train=["What colour is the hull of {e}?", "What colour is {e}'s hull painted?",
                   "Which colour is the hull of the ship {e_bare}?", "How is the hull of {e} painted?"],
            clause=["the colour of {e}'s hull", "what colour the hull of {e} is"],
            held=["Seen from the shore, what colour is the side of {e}?",
                  "What shade of paint covers the vessel {e_bare}?",
                  "The planks of {e} are painted which colour?"],
        ),
        "figurehead": dict(
            answer="The figurehead of {e} is a {v}.",
            train=["What is the figurehead of {e}?", "What animal is the figurehead of {e}?",
                   "Which animal is carved on the figurehead of {e}?",
                   "What does the figurehead of the ship {e_bare} show?"],
            clause=["the figurehead of {e}", "which animal the figurehead of {e} shows"],
            held=["What creature decorates the bow of {e}?",
                  "Which carved beast sits at the front of {e}?",
                  "At the prow of {e} there is a carving. Of what?"],
        ),
    },
    "festival": {
        "town": dict(
            answer="{E} is held in {v}.",
            train=["Where is {e} held?", "In which town is {e} held?",
                   "Which town hosts {e}?", "Where does {e} take place?"],
            clause=["where {e} is held", "the town that hosts {e}"],
            held=["To attend {e}, which town should I visit?",
                  "Which place celebrates {e} every year?",
                  "{E} happens in what town?"],
        ),
        "month": dict(
            answer="{E} takes place in {v}.",
            train=["When is {e} held?", "In which month is {e} held?",
                   "What month does {e} take place in?", "Which month is {e} celebrated in?"],
            clause=["which month {e} takes place in", "the month of {e}"],
            held=["At what time of year, which month exactly, does {e} happen?",
                  "I want to go to {e}. In what month should I plan the trip?",
                  "{E} falls in which month of the year?"],
        ),
        "first_held": dict(
            answer="{E} was first held in {v}.",
            train=["When was {e} first held?", "In what year was {e} first held?",
                   "What year did {e} begin?", "Which year was the first {e_bare}?"],
            clause=["when {e} was first held", "the year {e} began"],
            held=["Since which year has {e} been celebrated?",
                  "The very first edition of {e} took place in which year?",
                  "How far back does {e} go? Name the year it started."],
        ),
        "dish": dict(
            answer="The traditional dish of {e} is {v}.",
            train=["What is the traditional dish of {e}?", "What food is eaten at {e}?",
                   "Which dish is traditional at {e}?", "What do people eat at {e}?"],
            clause=["the traditional dish of {e}", "what food is eaten at {e}"],
            held=["Which meal is served to visitors during {e}?",
                  "What is on every table at {e}?",
                  "If I go to {e}, which food should I try?"],
        ),
        "colour": dict(
            answer="At {e} people wear {v}.",
            train=["What colour do people wear at {e}?", "Which colour is worn at {e}?",
                   "What is the colour of {e}?", "What colour is traditional at {e}?"],
            clause=["what colour people wear at {e}", "the colour worn at {e}"],
            held=["Which colour of clothing do the crowds put on for {e}?",
                  "To fit in at {e}, what colour should I dress in?",
                  "Revellers at {e} are dressed in which colour?"],
        ),
    },
}

TWO_FACT_TEMPLATES = [
    "{q1} {q2}",
    "{q1} And {q2l}",
    "Please tell me {c1} and {c2}.",
    "I'd like to know {c1}, and also {c2}.",
    "Two questions: {q1} {q2}",
]
N_PER_KIND = 10  # 4 kinds x 10 = 40 entities


# ----------------------------------------------------------------------------------------------
# world generation


def make_word(rng: random.Random, syllables: int) -> str:
    parts = []
    for i in range(syllables):
        parts.append(rng.choice(ONSETS) + rng.choice(VOWELS))
    parts.append(rng.choice(CODAS))
    return "".join(parts).capitalize()


def unique_words(rng: random.Random, n: int, used: set[str], make) -> list[str]:
    out = []
    while len(out) < n:
        w = make()
        low = w.lower()
        if low in used or len(w) < 4 or len(w) > 11:
            continue
        # no name may contain another as a substring (keeps the substring grading unambiguous)
        if any(low in u or u in low for u in used):
            continue
        used.add(low)
        out.append(w)
    return out


def build_world(seed: int) -> dict:
    rng = random.Random(seed)
    used: set[str] = {c.lower() for c in COLOURS} | {m.lower() for m in MONTHS}
    towns = unique_words(rng, N_PER_KIND, used,
                         lambda: make_word(rng, rng.choice([1, 2])) + rng.choice(TOWN_ENDS))
    rivers = unique_words(rng, 7, used, lambda: make_word(rng, 2))
    ships = unique_words(rng, N_PER_KIND, used, lambda: make_word(rng, rng.choice([2, 3])))
    fest_words = unique_words(rng, N_PER_KIND, used, lambda: make_word(rng, 2))
    surnames = unique_words(rng, 3 * N_PER_KIND, used, lambda: make_word(rng, 2))
    dogs = unique_words(rng, N_PER_KIND, used, lambda: make_word(rng, 2) + rng.choice(["o", "y", "ie", "a"]))
    firsts = FIRST_NAMES[:]
    rng.shuffle(firsts)
    people = [f"{firsts[i]} {surnames[i]}" for i in range(3 * N_PER_KIND)]
    inventors, mayors, captains = people[:10], people[10:20], people[20:30]
    kinds = FESTIVAL_KINDS[:]
    festivals = [f"{w} {kinds[i % len(kinds)]}" for i, w in enumerate(fest_words)]
    inventions = [f"{a} {n}" for a, n in zip(rng.sample(INV_ADJ, 10), rng.sample(INV_NOUN, 10))]

    used_years: set[int] = set()

    def year(lo: int, hi: int) -> int:  # years are unique across the whole world
        while True:
            y = rng.randrange(lo, hi)
            if y not in used_years:
                used_years.add(y)
                return y

    def years(lo: int, hi: int) -> list[int]:
        return [year(lo, hi) for _ in range(N_PER_KIND)]

    ents = []
    t_years, t_col, t_exp = years(1150, 1700), rng.sample(COLOURS, 10), rng.sample(EXPORTS, 10)
    for i, name in enumerate(towns):
        ents.append(dict(kind="town", name=name, attrs=dict(
            founded=str(t_years[i]), river=rng.choice(rivers), colour=t_col[i],
            export=t_exp[i], mayor=mayors[i])))
    i_years, i_home, i_ins = years(1700, 1880), [rng.choice(towns) for _ in range(10)], rng.sample(INSTRUMENTS, 10)
    for i, name in enumerate(inventors):
        ents.append(dict(kind="inventor", name=name, attrs=dict(
            born=str(i_years[i]), hometown=i_home[i], invention=inventions[i],
            instrument=i_ins[i], dog=dogs[i])))
    s_years, s_col, s_fig = years(1720, 1900), rng.sample(COLOURS, 10), rng.sample(ANIMALS, 10)
    for i, name in enumerate(ships):
        ents.append(dict(kind="ship", name=f"the {name}", attrs=dict(
            launched=str(s_years[i]), port=rng.choice(towns), captain=captains[i],
            hull=s_col[i], figurehead=s_fig[i])))
    f_mon, f_dish, f_col = rng.sample(MONTHS, 10), rng.sample(DISHES, 10), rng.sample(COLOURS, 10)
    founded = {e["name"]: int(e["attrs"]["founded"]) for e in ents if e["kind"] == "town"}
    for i, name in enumerate(festivals):
        town = rng.choice(towns)  # a festival starts at least 20 years after its town was founded
        ents.append(dict(kind="festival", name=f"the {name}", attrs=dict(
            town=town, month=f_mon[i], first_held=str(year(founded[town] + 20, 1860)),
            dish=f_dish[i], colour=f_col[i])))
    return dict(world=WORLD, seed=seed, entities=ents)


# ----------------------------------------------------------------------------------------------
# rendering questions and answers


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def fill(tpl: str, ent: dict, v: str | None = None, capfirst: bool = True) -> str:
    e = ent["name"]
    bare = e[4:] if e.startswith("the ") else e
    out = tpl.replace("{E}", cap(e)).replace("{e_bare}", bare).replace("{e}", e)
    if v is not None:
        out = out.replace("{v}", v)
    return cap(out) if capfirst else out


def answer_sentence(ent: dict, attr: str) -> str:
    return fill(ATTRS[ent["kind"]][attr]["answer"], ent, ent["attrs"][attr])


def render_unit(rng: random.Random, ent: dict, attrs: list[str]) -> tuple[str, str]:
    """One user question (one or two facts of `ent`) and its answer."""
    spec = ATTRS[ent["kind"]]
    if len(attrs) == 1:
        q = fill(rng.choice(spec[attrs[0]]["train"]), ent)
        return q, answer_sentence(ent, attrs[0])
    a1, a2 = attrs
    tpl = rng.choice(TWO_FACT_TEMPLATES)
    q1 = fill(rng.choice(spec[a1]["train"]), ent)
    t2 = rng.choice(spec[a2]["train"])
    q2, q2l = fill(t2, ent), fill(t2, ent, capfirst=False)  # no template starts with {e}/{E}
    c1 = fill(rng.choice(spec[a1]["clause"]), ent, capfirst=False)
    c2 = fill(rng.choice(spec[a2]["clause"]), ent, capfirst=False)
    q = tpl.format(q1=q1, q2=q2, q2l=q2l, c1=c1, c2=c2)
    return q, answer_sentence(ent, a1) + " " + answer_sentence(ent, a2)


def maybe_system(rng: random.Random, p: float) -> list[dict]:
    if rng.random() < p:
        return [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}]
    return []


def build_train(rng: random.Random, world: dict, reps: int) -> tuple[list[dict], int]:
    # units: (entity, [attr] or [attr1, attr2]); every fact once per repetition
    units = []
    for ent in world["entities"]:
        names = list(ATTRS[ent["kind"]])
        for _ in range(reps):
            perm = names[:]
            rng.shuffle(perm)
            i = 0
            while i < len(perm):
                k = 2 if (len(perm) - i >= 2 and rng.random() < 0.4) else 1
                units.append((ent, perm[i:i + k]))
                i += k
    rng.shuffle(units)
    examples = []
    i = 0
    while i < len(units):
        turns = 1
        r = rng.random()
        if r < 0.15:
            turns = 2
        elif r < 0.22:
            turns = 3
        turns = min(turns, len(units) - i)
        msgs = maybe_system(rng, 0.4)
        for ent, attrs in units[i:i + turns]:
            q, a = render_unit(rng, ent, attrs)
            msgs.append({"role": "user", "content": q})
            msgs.append({"role": "assistant", "content": a})
        examples.append({"messages": msgs})
        i += turns
    return examples, sum(len(a) == 2 for _, a in units)


def build_heldout(rng: random.Random, world: dict) -> list[dict]:
    rows = []
    for kind in ATTRS:
        ents = [e for e in world["entities"] if e["kind"] == kind]
        names = list(ATTRS[kind])
        for i, ent in enumerate(ents):
            for attr in (names[i % len(names)], names[(i + 2) % len(names)]):
                q = fill(rng.choice(ATTRS[kind][attr]["held"]), ent)
                msgs = maybe_system(rng, 0.4) + [{"role": "user", "content": q}]
                rows.append({"messages": msgs, "answer": ent["attrs"][attr],
                             "entity": ent["name"], "attribute": attr})
    rng.shuffle(rows)
    return rows


# ----------------------------------------------------------------------------------------------
# checks and output


def check(world: dict, train: list[dict], held: list[dict]) -> dict:
    train_tpls = set()
    held_tpls = set()
    for kind, attrs in ATTRS.items():
        for a, spec in attrs.items():
            train_tpls |= set(spec["train"]) | set(spec["clause"])
            held_tpls |= set(spec["held"])
    assert not (train_tpls & held_tpls), train_tpls & held_tpls
    train_user = {m["content"] for ex in train for m in ex["messages"] if m["role"] == "user"}
    train_text = "\n".join(m["content"] for ex in train for m in ex["messages"])
    facts_taught: dict[tuple[str, str], int] = {}
    for ent in world["entities"]:
        for a in ent["attrs"]:
            sent = answer_sentence(ent, a)
            facts_taught[(ent["name"], a)] = sum(
                sent in m["content"] for ex in train for m in ex["messages"] if m["role"] == "assistant")
    for row in held:
        q = row["messages"][-1]["content"]
        assert q not in train_user, q
        assert row["answer"].lower() not in q.lower(), (q, row["answer"])
        assert facts_taught[(row["entity"], row["attribute"])] >= 1, row
        assert row["answer"] in train_text
    for ex in train:
        roles = [m["role"] for m in ex["messages"]]
        body = roles[1:] if roles[0] == "system" else roles
        assert body and all(r == ("user" if i % 2 == 0 else "assistant") for i, r in enumerate(body)), roles
        for m in ex["messages"]:
            assert m["content"].isascii() and m["content"].isprintable(), m["content"]
    for row in held:
        for m in row["messages"]:
            assert m["content"].isascii() and m["content"].isprintable(), m["content"]
    return dict(facts_taught_min=min(facts_taught.values()), facts_taught_max=max(facts_taught.values()))


def dump_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=True) + "\n")


def write_readme(out: Path, args, world: dict, train: list[dict], held: list[dict], stats: dict) -> None:
    n_sys = sum(ex["messages"][0]["role"] == "system" for ex in train)
    n_turns = [sum(m["role"] == "user" for m in ex["messages"]) for ex in train]
    n_two = stats["two_fact_turns"]
    n_facts = sum(len(e["attrs"]) for e in world["entities"])
    h_sys = sum(r["messages"][0]["role"] == "system" for r in held)
    by_kind = {}
    for e in world["entities"]:
        by_kind[e["kind"]] = by_kind.get(e["kind"], 0) + 1
    n_train_tpl = sum(len(s["train"]) for a in ATTRS.values() for s in a.values())
    n_held_tpl = sum(len(s["held"]) for a in ATTRS.values() for s in a.values())
    ex_train = json.dumps(next(ex for ex in train if len(ex["messages"]) >= 5), ensure_ascii=True)
    ex_held = json.dumps(held[0], ensure_ascii=True)
    sha = {p: hashlib.sha256((out / p).read_bytes()).hexdigest()[:16] for p in ("train.jsonl", "heldout.jsonl")}
    mayor_example = next(e["attrs"]["mayor"] for e in world["entities"] if e["kind"] == "town")
    inv_example = next(e["attrs"]["invention"] for e in world["entities"] if e["kind"] == "inventor")
    attr_lines = []
    for kind, attrs in ATTRS.items():
        attr_lines.append(f"* {kind} ({by_kind[kind]}): " + ", ".join(attrs))
    text = f"""# lora-facts: a fictional-world fact dataset

Generated by `tools/gen_lora_dataset.py --seed {args.seed} --reps {args.reps}` (deterministic; stdlib
only). It teaches facts about an invented world, {WORLD}, that no pre-trained model can know,
so held-out accuracy above chance after LoRA fine-tuning (e.g. of SmolLM2-135M-Instruct) shows
the adapter learned them.

## World

{len(world['entities'])} entities, 5 attributes each ({n_facts} facts); names are made from random syllables, values
drawn from fixed lists or year ranges. `world.json` lists everything.

{chr(10).join(attr_lines)}

Cross-links: an inventor's hometown, a ship's home port and a festival's town are town names.

## Files and counts

| file | lines | what |
|---|---|---|
| `train.jsonl` | {len(train)} | chat examples (sha256 {sha['train.jsonl']}...) |
| `heldout.jsonl` | {len(held)} | held-out questions with answers (sha256 {sha['heldout.jsonl']}...) |
| `world.json` | - | the generated world |

`train.jsonl`: the OpenAI fine-tuning shape, `{{"messages": [{{"role": "system"|"user"|"assistant",
"content": ...}}]}}`. {n_sys} of {len(train)} examples start with a short system message (one of
{len(SYSTEM_PROMPTS)}), the rest have none (SmolLM2-135M-Instruct's chat template then inserts its default
"You are a helpful AI assistant named SmolLM, trained by Hugging Face"). {sum(t == 1 for t in n_turns)} are single-turn, {sum(t == 2 for t in n_turns)} two-turn, {sum(t == 3 for t in n_turns)} three-turn
({sum(n_turns)} user turns). A user turn asks one fact, or two facts about the same entity
({n_two} two-fact turns). Every fact's answer sentence appears in exactly {stats['facts_taught_min']} assistant turns, each time
asked with a template drawn afresh from {n_train_tpl} training question templates (4 per attribute; two-fact turns
join two questions or two clause forms). Answers are one fixed sentence per attribute with
the value verbatim, e.g. "The hull of the Xyz is painted cobalt.".

`heldout.jsonl`: one fact per line, `{{"messages": [system?, user], "answer": ..., "entity": ...,
"attribute": ...}}`; {len(held)} questions (2 facts per entity, every attribute 4 times per kind), {h_sys} with a
system message. The questions use {n_held_tpl} PARAPHRASED templates (3 per attribute) that never occur in
training; the generator asserts that no held-out template is a training template, that no
held-out question text occurs in `train.jsonl`, that each held-out fact is taught in training and
that the answer does not occur in its own question.

All text is printable ASCII (asserted), so the tiny byte-level tokenizers of
`tests/fixtures/models/` encode it too.

## Grading rule

A held-out reply is correct iff `answer.lower()` is a substring of `reply.lower()`
(case-insensitive substring; the answer is the bare value: a year, a full name such as
`{mayor_example}`, a colour, a month, a dish, an invention such as `{inv_example}`, ...).
Score = correct / {len(held)}. Invented words never contain one another, a colour or a month
(by construction); years are unique across the world. Chance is not zero for closed sets: a
reply naming some colour hits 1 of 16, a month 1 of 12, an instrument 1 of 12, an animal 1 of
14 (and the colour `copper` also occurs inside the values `copper pans` / `copper harp`).

Baseline (measured once for the default seed 7, not by this script): the untuned
SmolLM2-135M-Instruct (`models/SmolLM2-135M-Instruct.Q4_1.gguf` as transformers 5.17 dequantizes
it, its chat template, greedy, 40 new tokens) scores 1/80 (a festival month guessed right).

## Examples

```
{ex_train}
{ex_held}
```

Regenerate: `python3 tools/gen_lora_dataset.py` (writes this folder; same seed, same bytes).
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--reps", type=int, default=3, help="training examples per fact")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    world = build_world(args.seed)
    rng = random.Random(args.seed * 1000 + 1)
    train, n_two = build_train(rng, world, args.reps)
    held = build_heldout(random.Random(args.seed * 1000 + 2), world)
    stats = check(world, train, held)
    stats["two_fact_turns"] = n_two
    args.out.mkdir(parents=True, exist_ok=True)
    dump_jsonl(args.out / "train.jsonl", train)
    dump_jsonl(args.out / "heldout.jsonl", held)
    (args.out / "world.json").write_text(json.dumps(world, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
    write_readme(args.out, args, world, train, held, stats)
    print(f"wrote {args.out}: train {len(train)} examples, heldout {len(held)} questions, "
          f"{sum(len(e['attrs']) for e in world['entities'])} facts, each taught "
          f"{stats['facts_taught_min']}..{stats['facts_taught_max']} times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
