"""The embedded offline demo input: a Pushshift-style dump and a WARC of the pages it links to.

Everything here is generated from word lists and a small sentence grammar written for this
project (no text is copied from anywhere), from one seed, so ``make demo`` works offline and
gives the same bytes every time. ``generate_demo(dir)`` writes::

    DIR/RS_demo.zst          NDJSON submissions, zstd with a 256 MiB window (readers need
                             max_window_size=2**31, like the real dumps)
    DIR/pages.warc.gz        HTTP responses for the linked pages (warcinfo + response records)
    DIR/archive.warc.gz      what a web archive kept of links that are dead in the crawl
    DIR/test_sets/           held-out text for the contamination demo, and index.json
    DIR/truth.json           every planted case, so tests can check what the pipeline did
    DIR/demo.json            the parameters and file checksums (reruns with the same ones skip)

The dump plants the cases the pipeline must handle: karma under 3 (and a link whose karma only
passes when summed), self posts, NSFW posts, Wikipedia and Wikimedia links, media and Reddit
hosts, non-http and malformed URLs, one article under several URL spellings, syndicated exact
copies, lightly edited near-copies, pages under the 128-word threshold, German and French pages
(one in ISO-8859-1), 404s, redirects, a PDF, links missing from the crawl, and a few malformed
lines; and links dead in the crawl (404 or missing) whose earlier captures a web archive holds
(``archive.warc.gz``, which the demo serves with pywb). The WARC stores each page under its
primary spelling (https, no ``www.``, no trailing
slash, no query); replay must look pages up by canonical URL.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import logging
import random
import re
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from foundation import storage

log = logging.getLogger(__name__)

DUMP_NAME = "RS_demo.zst"
WARC_NAME = "pages.warc.gz"
ARCHIVE_WARC_NAME = "archive.warc.gz"
ARCHIVED_LINKS = 6
"""Dead links of the crawl that the demo's web archive recovers (half 404, half missing)."""
ZSTD_WINDOW_LOG = 28
"""Larger than zstd's default decoder limit (2**27), as in the real dumps (2**31)."""
BASE_TIME = 1_556_668_800  # 2019-05-01T00:00:00Z

# --- lexicon: invented places, people and topics ----------------------------------------------

PLACES = (
    "Marrowfield", "Quillbury", "Estervale", "Brackenmoor", "Lowhaven", "Tarrow Cross",
    "Wendmere", "Saltcombe Rise", "Orrin Bay", "Felling Green", "Yarrowby", "Castlebeck",
    "Hollin Vale", "Dunmarsh", "Pennick", "Redstow",
)  # fmt: skip
FIRST = (
    "Ada", "Bram", "Corin", "Delia", "Emrys", "Fenna", "Galen", "Hester", "Ilse", "Jory",
    "Kestrel", "Linnea", "Marek", "Nell", "Osric", "Petra", "Quinn", "Rowan", "Sabine", "Tobin",
    "Una", "Vesna", "Wilf", "Yara",
)  # fmt: skip
SURNAMES = (
    "Ashdown", "Brightwater", "Coldridge", "Dunmore", "Elsworth", "Farrant", "Greaves",
    "Holloway", "Inchbold", "Jessop", "Kettering", "Lamberth", "Marlowe", "Nettleford",
    "Oakhurst", "Pellow", "Quarrie", "Redfern", "Stannard", "Thackery", "Underhill", "Vossler",
    "Whitcombe", "Yelland",
)  # fmt: skip
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Topic:
    """The words one subject area fills the sentence templates with."""

    name: str
    subreddits: tuple[str, ...]
    groups: tuple[str, ...]  # plural subjects
    orgs: tuple[str, ...]
    roles: tuple[str, ...]
    nouns: tuple[str, ...]  # singular things
    objects: tuple[str, ...]  # noun phrases
    verbs: tuple[tuple[str, str, str], ...]  # (base, past, third person present)
    adjectives: tuple[str, ...]


TOPICS = (
    Topic(
        "transit",
        ("transit", "localnews", "urbanplanning"),
        ("ferry operators", "commuters", "tram drivers", "station staff", "rail planners",
         "passenger groups"),
        ("the Harbour Transit Board", "the Northern Rail Trust", "the tram company",
         "the regional ferry service"),
        ("head of operations", "chief engineer", "timetable planner", "union steward"),
        ("timetable", "ferry", "tram line", "signal box", "depot", "platform", "fare",
         "rail link"),
        ("the winter timetable", "a second ferry berth", "the new signalling system",
         "cheaper weekly fares", "the night tram route", "the old goods depot",
         "longer platforms", "a bus lane on the quay road"),
        (("approve", "approved", "approves"), ("delay", "delayed", "delays"),
         ("extend", "extended", "extends"), ("review", "reviewed", "reviews"),
         ("replace", "replaced", "replaces"), ("fund", "funded", "funds")),
        ("crowded", "punctual", "overdue", "electrified", "late-running", "refurbished"),
    ),
    Topic(
        "orchards",
        ("gardening", "farming", "localnews"),
        ("orchard growers", "cider makers", "pickers", "beekeepers", "soil scientists",
         "market traders"),
        ("the Orchard Cooperative", "the county growers' guild", "the cider press society",
         "the seed library"),
        ("cooperative secretary", "head grower", "press manager", "field researcher"),
        ("harvest", "orchard", "cider press", "frost", "rootstock", "pollinator strip",
         "graft", "hedgerow"),
        ("the late apple harvest", "a shared cider press", "frost protection fleece",
         "heritage pear varieties", "the autumn market", "new hedgerow planting",
         "the grafting workshop", "a wildflower margin"),
        (("plant", "planted", "plants"), ("harvest", "harvested", "harvests"),
         ("protect", "protected", "protects"), ("sell", "sold", "sells"),
         ("graft", "grafted", "grafts"), ("survey", "surveyed", "surveys")),
        ("heritage", "frost-damaged", "bumper", "organic", "waterlogged", "sheltered"),
    ),
    Topic(
        "astronomy",
        ("astronomy", "space", "science"),
        ("amateur astronomers", "club members", "students", "observers", "night-sky campaigners",
         "telescope builders"),
        ("the Saltcombe Astronomical Society", "the hilltop observatory",
         "the dark-sky trust", "the university physics department"),
        ("observing secretary", "observatory director", "outreach officer", "lens grinder"),
        ("telescope", "comet", "meteor shower", "eclipse", "observatory dome", "star chart",
         "mirror", "light meter"),
        ("a faint comet near the horizon", "the refurbished dome", "a new reflecting telescope",
         "streetlight shields", "the public viewing night", "a partial eclipse",
         "the variable star survey", "the winter meteor count"),
        (("observe", "observed", "observes"), ("record", "recorded", "records"),
         ("measure", "measured", "measures"), ("photograph", "photographed", "photographs"),
         ("catalogue", "catalogued", "catalogues"), ("track", "tracked", "tracks")),
        ("faint", "cloud-free", "overdue", "brilliant", "light-polluted", "hand-built"),
    ),
    Topic(
        "library",
        ("books", "education", "technology"),
        ("librarians", "volunteers", "young readers", "archivists", "teachers",
         "robotics mentors"),
        ("the central library", "the county archive", "the reading trust",
         "the community makerspace"),
        ("chief librarian", "archive manager", "workshop leader", "volunteer coordinator"),
        ("archive", "reading room", "robotics kit", "loan scheme", "catalogue", "map collection",
         "study hall", "printing press"),
        ("the digitised parish maps", "a robotics club for teenagers", "longer opening hours",
         "the mobile library van", "a repair cafe", "the oral history project",
         "free evening classes", "the restored printing press"),
        (("open", "opened", "opens"), ("digitise", "digitised", "digitises"),
         ("lend", "lent", "lends"), ("restore", "restored", "restores"),
         ("host", "hosted", "hosts"), ("expand", "expanded", "expands")),
        ("quiet", "crowded", "restored", "underfunded", "popular", "hand-written"),
    ),
    Topic(
        "coast",
        ("environment", "energy", "science"),
        ("harbour engineers", "fishing crews", "coastguards", "tidal researchers",
         "lifeboat volunteers", "dock workers"),
        ("the Harbour Commission", "the tidal energy consortium", "the coastal survey office",
         "the lifeboat station"),
        ("harbour master", "lead engineer", "survey director", "station coxswain"),
        ("sea wall", "tidal turbine", "breakwater", "harbour", "storm surge", "lifeboat",
         "jetty", "dredger"),
        ("a second tidal turbine", "the cracked sea wall", "new flood gates",
         "the spring storm surge", "a longer breakwater", "the harbour dredging plan",
         "cleaner fishing nets", "the offshore wind cable"),
        (("repair", "repaired", "repairs"), ("monitor", "monitored", "monitors"),
         ("install", "installed", "installs"), ("inspect", "inspected", "inspects"),
         ("reinforce", "reinforced", "reinforces"), ("test", "tested", "tests")),
        ("storm-battered", "tidal", "offshore", "corroded", "sheltered", "rising"),
    ),
    Topic(
        "chess",
        ("chess", "boardgames", "games"),
        ("club players", "juniors", "arbiters", "grandmasters", "organisers",
         "puzzle setters"),
        ("the county chess league", "the rapid-play congress", "the junior academy",
         "the correspondence circle"),
        ("league secretary", "chief arbiter", "junior coach", "tournament director"),
        ("tournament", "opening", "endgame", "rating list", "simultaneous display", "clock",
         "problem column", "league table"),
        ("a quiet queen's pawn opening", "the knockout final", "a drawn rook endgame",
         "the spring rating list", "new digital clocks", "a blitz marathon",
         "the schools championship", "a forty-board simultaneous display"),
        (("win", "won", "wins"), ("draw", "drew", "draws"), ("analyse", "analysed", "analyses"),
         ("organise", "organised", "organises"), ("defend", "defended", "defends"),
         ("sponsor", "sponsored", "sponsors")),
        ("sharp", "drawn", "tense", "lopsided", "surprising", "well-prepared"),
    ),
    Topic(
        "council",
        ("politics", "localnews", "news"),
        ("councillors", "residents", "auditors", "shopkeepers", "ratepayers", "campaigners"),
        ("the borough council", "the finance committee", "the parish assembly",
         "the roads department"),
        ("council leader", "finance chair", "borough treasurer", "planning officer"),
        ("budget", "levy", "footpath", "audit", "bypass", "market hall", "pothole fund",
         "bus shelter"),
        ("the draft budget", "a higher parking levy", "the market hall repairs",
         "new footpaths to the school", "the delayed bypass", "an independent audit",
         "the pothole repair fund", "free bus shelters"),
        (("approve", "approved", "approves"), ("reject", "rejected", "rejects"),
         ("cut", "cut", "cuts"), ("debate", "debated", "debates"),
         ("postpone", "postponed", "postpones"), ("publish", "published", "publishes")),
        ("contested", "balanced", "overdue", "costly", "unpopular", "cross-party"),
    ),
    Topic(
        "bees",
        ("beekeeping", "environment", "gardening"),
        ("beekeepers", "ecologists", "farmers", "park rangers", "gardeners", "schoolchildren"),
        ("the beekeepers' association", "the meadow trust", "the parks department",
         "the pollinator survey"),
        ("association chair", "meadow warden", "survey lead", "apiary inspector"),
        ("hive", "meadow", "honey yield", "swarm", "apiary", "queen", "wildflower bank",
         "mite count"),
        ("a record honey yield", "the wildflower meadows", "a late swarm in the orchard",
         "the rooftop apiary", "new observation hives", "the spring mite count",
         "a bee-friendly verge", "the queen-rearing course"),
        (("inspect", "inspected", "inspects"), ("count", "counted", "counts"),
         ("plant", "planted", "plants"), ("relocate", "relocated", "relocates"),
         ("protect", "protected", "protects"), ("study", "studied", "studies")),
        ("thriving", "sheltered", "wild", "damp", "flowering", "busy"),
    ),
)  # fmt: skip

SENTENCES = (
    "{Group} in {place} {past} {object} {time}.",
    "{person}, {role} at {org}, said {object} had been {past} {time}.",
    '"{Quote}," said {person}, {role} at {org}.',
    '"{Quote}," {person} told reporters {time}.',
    "According to {org}, {n} {groups} {past} {object} {time}, {compare} than {time2}.",
    "The {adj} {noun} {pres} {object}, which {clause}.",
    "Critics argue that {clause}, while supporters point out that {clause}.",
    "{connective}, {clause}.",
    "{Org} plans to {base} {object} by {month} {year}.",
    "Residents of {place} {past} {object} {manner}.",
    "At a meeting on {weekday}, {groups} voted to {base} {object}.",
    "{pct} percent of {groups} surveyed said that {clause}.",
    "It is not the first time {place} has {past} {object}.",
    "The {noun} will cost about {money}, figures from {org} show.",
    "Questions remain about {object} and the {adj} {noun}.",
    "Whether {clause} is still unclear.",
    "{Group} {time} {past} {object}, and {clause}.",
    "In {place}, the {noun} has become {adj} since {year}.",
    "{person} said the {noun} was {adj} but that {clause}.",
    "Some {groups} want {org} to {base} {object} first.",
    "The decision means {groups} in {place} will {base} {object} {time2}.",
    "{connective}, the {adj} {noun} near {place} {pres} {object}.",
)
QUOTES = (
    "we have waited long enough for {object}",
    "{object} is not a luxury, it is what {place} needs",
    "nobody expected the {noun} to be so {adj}",
    "if we {base} {object} now, the {noun} will last another decade",
    "the {groups} did the hard work and deserve the credit",
    "this is about {object}, not about politics",
    "the numbers for the {noun} speak for themselves",
)
CLAUSES = (
    "the {noun} {pres} {object}",
    "{groups} {past} {object} {time}",
    "{org} will {base} {object} {time2}",
    "the {adj} {noun} could {base} {object}",
    "{object} is more {adj} than it looks",
    "{groups} in {place} {past} the {noun}",
)
TIMES = (
    "last week", "on {weekday}", "earlier this year", "in {month}", "over the summer",
    "since {year}", "before the winter", "last month", "this spring", "two years ago",
)  # fmt: skip
LATER = ("next year", "by the autumn", "within a decade", "before {month}", "next spring")
MANNERS = (
    "with some relief", "without much fuss", "at a crowded public meeting", "in large numbers",
    "despite the weather", "for the first time",
)  # fmt: skip
CONNECTIVES = (
    "However", "Meanwhile", "Even so", "In the meantime", "For now", "As a result", "Still",
    "By contrast", "In the end", "On the other hand",
)  # fmt: skip
COMPARE = ("more", "fewer", "slightly more", "far fewer", "roughly as many")
HEADLINES = (
    "{Place} {noun} {pres} {object}",
    "{Org} to {base} {object}",
    "Why {groups} in {place} {pres_plural} the {noun}",
    "{Adj} {noun} divides {place}",
    "{Groups} {past} {object} after {adj} year",
    "What the {noun} means for {place}",
)
EDITOR_NOTES = (
    "Editor's note: this article was updated with a comment from {org}.",
    "Update: figures for the {noun} were corrected on {weekday}.",
    "Correction: an earlier version misspelled the name of {person}.",
)

# German and French pages: a handful of templates each, enough for two or three pages.
GERMAN = (
    "Der Gemeinderat von {ort} hat am {tag} über {ding} beraten.",
    "Viele Bürgerinnen und Bürger in {ort} fordern {ding}.",
    "Nach Angaben der Verwaltung kostet {ding} rund {zahl} Millionen Euro.",
    "»Wir müssen jetzt handeln«, sagte {name} am {tag}.",
    "Die Arbeiten an {ding} sollen im {monat} beginnen und bis zum Herbst dauern.",
    "Kritiker bemängeln, dass {ding} zu teuer und zu spät geplant worden sei.",
    "Für die Schülerinnen und Schüler in {ort} ändert sich zunächst wenig.",
    "Außerdem prüft die Stadt, ob {ding} größer ausfallen könnte.",
    "Die nächste öffentliche Sitzung findet am {tag} im Rathaus statt.",
)
GERMAN_FILL = {
    "ort": ("Mühlbach am See", "Grünwerder", "Lindenhagen", "Östrich", "Weißenfurt"),
    "ding": ("die neue Fährverbindung", "den Umbau des Marktplatzes", "die Brücke über die Aue",
             "ein größeres Freibad", "die Sanierung der Stadtbücherei", "längere Öffnungszeiten"),
    "tag": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag"),
    "monat": ("März", "April", "Mai", "Juni", "Oktober"),
    "name": ("Bürgermeisterin Jörgensen", "Stadtrat Weißhaupt", "Ortsvorsteher Brückner"),
    "zahl": ("1,2", "3,5", "4,8", "7,1"),
}  # fmt: skip
FRENCH = (
    "Le conseil municipal de {ville} a voté {chose} lors de la séance de {jour}.",
    "Selon la mairie, {chose} coûtera environ {nombre} millions d'euros.",
    "« C'est une étape importante pour toute la région », a déclaré {nom}.",
    "Les habitants de {ville} attendent {chose} depuis plusieurs années.",
    "Les travaux commenceront en {mois} et dureront jusqu'à l'été prochain.",
    "Certains commerçants craignent que {chose} ne réduise la fréquentation du centre.",
    "Une réunion publique est prévue {jour} soir à la salle des fêtes.",
    "D'après l'étude, la fréquentation pourrait doubler d'ici cinq ans.",
)
FRENCH_FILL = {
    "ville": ("Saint-Aubrac", "Belvèze-sur-Orne", "Montfleury", "Les Étangs-Verts"),
    "chose": ("la rénovation du marché couvert", "une nouvelle ligne de tramway",
              "l'agrandissement de la médiathèque", "la piste cyclable le long du canal"),
    "jour": ("lundi", "mardi", "jeudi", "vendredi"),
    "mois": ("février", "avril", "septembre", "novembre"),
    "nom": ("la maire Hélène Carrère", "l'adjoint Théo Lemaître", "le préfet André Bérard"),
    "nombre": ("2,4", "5,9", "8,3"),
}  # fmt: skip

# The "clean" test set uses its own lexicon (workshop instructions), disjoint from the pages'
# content words, so that no 8-gram of it can occur in the generated pages.
CLEAN = (
    "Sand the {part} with {grit} paper until the {finish} feels even.",
    "Before gluing, clamp the {part} to the {bench} and check it stays square.",
    "Mix the {resin} slowly so that no bubbles rise through it.",
    "If the {part} warps, dampen its hollow side and weigh it down overnight.",
    "Mark every {joint} with soft pencil before cutting anything.",
    "Let the {resin} cure for {hours} hours away from draughts and dust.",
    "A blunt {blade} tears fibres; hone it on the {stone} first.",
    "Rub wax into the {finish} with a lint-free rag, then buff it briskly.",
    "Drill a pilot hole so the {joint} does not split near the end grain.",
)
CLEAN_FILL = {
    "part": ("tabletop", "drawer front", "chair rung", "cabinet door", "shelf bracket"),
    "grit": ("coarse", "medium", "fine", "very fine"),
    "finish": ("surface", "varnish", "oiled grain", "lacquer coat"),
    "bench": ("workbench", "trestle", "sawhorse"),
    "resin": ("epoxy", "wood glue", "hide glue", "filler paste"),
    "joint": ("dovetail", "mortise", "dowel", "tenon"),
    "hours": ("six", "twelve", "twenty-four"),
    "blade": ("chisel", "plane iron", "spokeshave"),
    "stone": ("whetstone", "strop", "diamond plate"),
}  # fmt: skip

# --- sites --------------------------------------------------------------------------------------

NEWS_HOSTS = (
    "news-example-1.test", "news-example-2.test", "news-example-3.test",
    "news-example-4.test", "fieldnotes.example", "harbour-gazette.example",
)  # fmt: skip
SYNDICATOR = "wire-example.test"
MIRROR = "mirror-example.test"
FOREIGN_HOSTS = {"de": "nachrichten-example.test", "fr": "journal-example.test"}
WIKI_URLS = (
    "https://en.wikipedia.org/wiki/Tidal_power",
    "http://de.wikipedia.org/wiki/Apfel",
    "https://en.m.wikipedia.org/wiki/Meteor_shower",
    "https://fr.wikipedia.org/wiki/%C3%89checs",
    "https://de.m.wikipedia.org/wiki/Honigbiene",
    "https://commons.wikimedia.org/wiki/File:Lighthouse.jpg",
    "https://en.wiktionary.org/wiki/orchard",
    "https://www.wikipedia.org/",
)
MEDIA_URLS = (
    "https://i.imgur.com/Xk3pQ9a.jpg",
    "https://imgur.com/a/h7Yt2Lm",
    "https://www.youtube.com/watch?v=dQ0zX1yB2cE",
    "https://youtu.be/Qm4Tn8vKp2s",
    "https://i.redd.it/8g2kd91mzq3c1.png",
    "https://v.redd.it/p0f3s9kq2ab",
    "https://news-example-2.test/photos/harbour-storm.JPG",
    "https://news-example-3.test/media/comet-timelapse.mp4",
    "https://fieldnotes.example/files/orchard-map.png",
    "https://news-example-1.test/uploads/budget-summary.pdf",
    "https://gfycat.com/softbrightheron",
    "https://news-example-4.test/img/chess-final.gif?size=large",
)
REDDIT_LINKS = (
    "https://www.reddit.com/r/localnews/comments/b1x2y3/meeting_thread/",
    "https://old.reddit.com/r/chess/comments/b2y3z4/final_round/",
)
BAD_SCHEME_URLS = (
    "ftp://files.news-example-1.test/timetable.txt",
    "mailto:editor@wire-example.test",
)
MALFORMED_URLS = ("http://", "htp:/news-example-2.test//broken link")


@dataclass(frozen=True)
class DemoPaths:
    """Where ``generate_demo`` put its files."""

    root: str
    dump: str
    warc: str
    test_sets: str
    truth: str
    archive_warc: str


@dataclass
class _Article:
    """A generated page before rendering: the text a good extractor should recover."""

    url: str
    title: str
    paragraphs: list[str]
    author: str
    published: int
    lang: str = "en"
    topic: str = ""

    @property
    def words(self) -> int:
        return sum(len(p.split()) for p in self.paragraphs) + len(self.title.split())


@dataclass
class _Response:
    url: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    ts: int


@dataclass
class _Demo:
    """Everything generated, before serialisation."""

    submissions: list[dict[str, Any]] = field(default_factory=list)
    responses: list[_Response] = field(default_factory=list)
    cases: dict[str, Any] = field(default_factory=dict)
    articles: dict[str, _Article] = field(default_factory=dict)


# --- text generation ---------------------------------------------------------------------------


class _Writer:
    """Fills the templates from the lexicon with one seeded random stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def person(self) -> str:
        return f"{self.rng.choice(FIRST)} {self.rng.choice(SURNAMES)}"

    def _fill(self, template: str, topic: Topic) -> str:
        def slot(m: re.Match[str]) -> str:
            name = m.group(1)
            value = self._slot(name.lower(), topic)
            if not name[:1].isupper():
                return value
            # A capitalised slot whose text starts with another slot passes the capital on.
            i = 1 if value.startswith("{") else 0
            return value[:i] + value[i : i + 1].upper() + value[i + 1 :]

        # Slots may expand to text with slots in it (quotes, clauses, times): repeat.
        for _ in range(4):
            if "{" not in template:
                break
            template = re.sub(r"\{(\w+)\}", slot, template)
        return template

    def _slot(self, name: str, t: Topic) -> str:
        r = self.rng
        verb = r.choice(t.verbs)
        simple = {
            "group": lambda: r.choice(t.groups),
            "groups": lambda: r.choice(t.groups),
            "org": lambda: r.choice(t.orgs),
            "role": lambda: r.choice(t.roles),
            "noun": lambda: r.choice(t.nouns),
            "object": lambda: r.choice(t.objects),
            "adj": lambda: r.choice(t.adjectives),
            "base": lambda: verb[0],
            "past": lambda: verb[1],
            "pres": lambda: verb[2],
            "pres_plural": lambda: verb[0],
            "place": lambda: r.choice(PLACES),
            "person": self.person,
            "quote": lambda: r.choice(QUOTES),
            "clause": lambda: r.choice(CLAUSES),
            "time": lambda: r.choice(TIMES),
            "time2": lambda: r.choice(LATER),
            "manner": lambda: r.choice(MANNERS),
            "connective": lambda: r.choice(CONNECTIVES),
            "compare": lambda: r.choice(COMPARE),
            "weekday": lambda: r.choice(WEEKDAYS),
            "month": lambda: r.choice(MONTHS),
            "year": lambda: str(r.randint(1994, 2018)),
            "n": lambda: str(r.randint(3, 900)),
            "pct": lambda: str(r.randint(11, 89)),
            "money": lambda: f"{r.randint(2, 95) / 10:.1f} million",
        }
        return simple[name]()

    def sentence(self, topic: Topic) -> str:
        return self._fill(self.rng.choice(SENTENCES), topic)

    def paragraph(self, topic: Topic) -> str:
        return " ".join(self.sentence(topic) for _ in range(self.rng.randint(3, 6)))

    def headline(self, topic: Topic) -> str:
        return self._fill(self.rng.choice(HEADLINES), topic)

    def body(self, topic: Topic, min_words: int, max_words: int) -> list[str]:
        target = self.rng.randint(min_words, max_words)
        paragraphs: list[str] = []
        words = 0
        while words < target:
            p = self.paragraph(topic)
            paragraphs.append(p)
            words += len(p.split())
        return paragraphs

    def short_body(self, topic: Topic) -> list[str]:
        """Under 128 words: one or two short paragraphs."""
        paragraphs = [" ".join(self.sentence(topic) for _ in range(self.rng.randint(2, 3)))]
        if self.rng.random() < 0.5:
            paragraphs.append(self.sentence(topic))
        while sum(len(p.split()) for p in paragraphs) > 100:
            paragraphs.pop()
        return paragraphs or [self.sentence(topic)]

    def foreign(self, templates: tuple[str, ...], fill: dict[str, tuple[str, ...]]) -> list[str]:
        def one() -> str:
            t = self.rng.choice(templates)
            return re.sub(r"\{(\w+)\}", lambda m: self.rng.choice(fill[m.group(1)]), t)

        return [" ".join(one() for _ in range(self.rng.randint(4, 6))) for _ in range(6)]

    def near_copy(self, paragraphs: list[str], topic: Topic) -> list[str]:
        """A lightly edited copy: about 2% of words changed and an editor's note added."""
        fillers = ("also", "now", "still", "then", "again", "indeed")
        out = []
        for p in paragraphs:
            words = p.split()
            for i in range(len(words)):
                if self.rng.random() < 0.02:
                    words[i] = self.rng.choice(fillers)
            out.append(" ".join(words))
        out.append(self._fill(self.rng.choice(EDITOR_NOTES), topic))
        return out


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, d = divmod(n, 36)
        out = digits[d] + out
        if n == 0:
            return out


# --- HTML and HTTP -------------------------------------------------------------------------------


def _site_name(host: str) -> str:
    base = host.split(".")[0].replace("-example", "").replace("-", " ")
    return base.title() + " Daily"


def render_html(a: _Article, host: str, related: list[str], charset: str = "utf-8") -> str:
    """A page the way news sites look: header, nav, cookie banner, article, related, footer."""
    site = html.escape(_site_name(host))
    date = datetime.fromtimestamp(a.published, UTC).strftime("%Y-%m-%d")
    esc = html.escape
    body = []
    for i, p in enumerate(a.paragraphs):
        if i and i % 4 == 0 and a.lang == "en":
            body.append(f"      <h2>{esc(' '.join(p.split()[:5]).rstrip('.,;'))}</h2>")
        body.append(f"      <p>{esc(p)}</p>")
    rel = "\n".join(
        f'        <li><a href="/related/{i}">{esc(r)}</a></li>' for i, r in enumerate(related)
    )
    nav = "".join(
        f'<li><a href="/{s.lower()}">{s}</a></li>'
        for s in ("Home", "Local", "Science", "Sport", "Opinion", "Contact")
    )
    return f"""<!DOCTYPE html>
<html lang="{a.lang}">
<head>
  <meta charset="{charset}">
  <title>{esc(a.title)} | {site}</title>
  <meta name="author" content="{esc(a.author)}">
  <meta name="description" content="{esc(a.paragraphs[0][:150])}">
  <meta property="og:title" content="{esc(a.title)}">
  <meta property="article:published_time" content="{date}">
  <link rel="canonical" href="{esc(a.url)}">
</head>
<body>
  <div class="cookie-banner">We use cookies to improve your experience. <a href="/privacy">Settings</a></div>
  <header>
    <div class="logo"><a href="/">{site}</a></div>
    <nav><ul>{nav}</ul></nav>
    <form action="/search"><input name="q" placeholder="Search"></form>
  </header>
  <main>
    <article>
      <h1>{esc(a.title)}</h1>
      <p class="byline">By {esc(a.author)} &middot; <time datetime="{date}">{date}</time></p>
{chr(10).join(body)}
    </article>
    <div class="share">Share this article: <a href="#">Mail</a> <a href="#">Print</a></div>
    <aside class="related">
      <h3>Related stories</h3>
      <ul>
{rel}
      </ul>
    </aside>
  </main>
  <footer>
    <p>&copy; 2019 {site}. All rights reserved.</p>
    <ul><li><a href="/about">About us</a></li><li><a href="/privacy">Privacy</a></li><li><a href="/jobs">Jobs</a></li></ul>
  </footer>
</body>
</html>
"""  # noqa: E501


def _http_date(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _html_response(url: str, page: str, ts: int, charset: str, header_charset: bool) -> _Response:
    body = page.encode(charset)
    ctype = f"text/html; charset={charset}" if header_charset else "text/html"
    headers = [
        ("Date", _http_date(ts)),
        ("Server", "demo-httpd/1.0"),
        ("Content-Type", ctype),
        ("Content-Length", str(len(body))),
    ]
    return _Response(url, 200, "OK", headers, body, ts)


def _not_found(url: str, ts: int) -> _Response:
    body = (
        b"<!DOCTYPE html><html lang='en'><head><title>Page not found</title></head>"
        b"<body><h1>404</h1><p>The page you asked for has moved or never existed.</p></body></html>"
    )
    headers = [
        ("Date", _http_date(ts)),
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ]
    return _Response(url, 404, "Not Found", headers, body, ts)


def _redirect(url: str, location: str, status: int, ts: int) -> _Response:
    reason = {301: "Moved Permanently", 302: "Found"}[status]
    headers = [("Date", _http_date(ts)), ("Location", location), ("Content-Length", "0")]
    return _Response(url, status, reason, headers, b"", ts)


# --- the demo ------------------------------------------------------------------------------------


class _Builder:
    """Builds the submissions and responses; one seeded stream makes it deterministic."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.w = _Writer(self.rng)
        self.demo = _Demo()
        self.next_id = 36**4  # five-character base-36 ids, like 2019's
        self.used_paths: set[str] = set()

    def topic(self) -> Topic:
        return self.rng.choice(TOPICS)

    def new_url(self, host: str, title: str) -> str:
        slug = _slug(title) or "story"
        for n in range(100):
            style = self.rng.randrange(3)
            year = self.rng.randint(2016, 2019)
            month = self.rng.randint(1, 12)
            tail = slug if n == 0 else f"{slug}-{n + 1}"
            path = (
                f"/{year}/{month:02d}/{tail}",
                f"/articles/{self.rng.randint(1000, 99999)}-{tail}.html",
                f"/news/{tail}",
            )[style]
            if host + path not in self.used_paths:
                self.used_paths.add(host + path)
                return f"https://{host}{path}"
        raise RuntimeError(f"no free path for {title!r} on {host}")

    def article(self, host: str, topic: Topic | None = None, short: bool = False) -> _Article:
        topic = topic or self.topic()
        title = self.w.headline(topic)
        paragraphs = self.w.short_body(topic) if short else self.w.body(topic, 300, 1000)
        published = BASE_TIME - self.rng.randint(3600, 86400 * 60)
        a = _Article(
            self.new_url(host, title), title, paragraphs, self.w.person(), published, "en",
            topic.name,
        )  # fmt: skip
        self.demo.articles[a.url] = a
        return a

    def serve(self, a: _Article, host: str | None = None, charset: str = "utf-8",
              header_charset: bool = True, url: str | None = None,
              into: list[_Response] | None = None) -> None:  # fmt: skip
        host = host or a.url.split("/")[2]
        related = [self.w.headline(self.topic()) for _ in range(4)]
        page = render_html(a, host, related, charset)
        ts = a.published + 3600
        into = self.demo.responses if into is None else into
        into.append(_html_response(url or a.url, page, ts, charset, header_charset))

    def archived(self, seed: int) -> list[_Response]:
        """Links dead in the crawl whose pages a web archive captured an hour after they were
        published: half answer 404 in the crawl's WARC, half are missing from it. Their own
        random stream leaves every other case as it was."""
        self.rng = random.Random(seed + 2)
        self.w = _Writer(self.rng)
        captures: list[_Response] = []
        self.demo.cases["archived"] = []
        for i in range(ARCHIVED_LINKS):
            a = self.article(self.rng.choice(NEWS_HOSTS))
            self.serve(a, into=captures)
            if i % 2 == 0:
                self.demo.responses.append(_not_found(a.url, BASE_TIME))
            self.submit(a.url)
            self.demo.cases["archived"].append(a.url)
        return captures

    def submit(self, url: str, score: int | None = None, **extra: Any) -> dict[str, Any]:
        sid = _b36(self.next_id)
        self.next_id += self.rng.randint(1, 40)
        topic = self.topic()
        sub = extra.pop("subreddit", None) or self.rng.choice(topic.subreddits)
        title = extra.pop("title", None) or self.w.headline(topic)
        host = url.split("/")[2].lower() if "://" in url and url.count("/") >= 2 else ""
        domain = host.split("@")[-1].split(":")[0].removeprefix("www.")
        rec: dict[str, Any] = {
            "id": sid,
            "subreddit": sub,
            "url": url,
            "score": self.rng.randint(3, 2500) if score is None else score,
            "created_utc": 0,  # set when the dump is ordered
            "is_self": False,
            "over_18": False,
            "title": title,
            "domain": domain,
            "permalink": f"/r/{sub}/comments/{sid}/{_slug(title)[:40].replace('-', '_')}/",
            "author": self.rng.choice(
                ("[deleted]", f"{self.rng.choice(FIRST).lower()}_{self.rng.randint(1, 999)}")
            ),
            "num_comments": self.rng.randint(0, 400),
            "selftext": "",
        }
        rec.update(extra)
        self.demo.submissions.append(rec)
        return rec

    def build(self, n_submissions: int) -> _Demo:
        cases = self.demo.cases
        host = lambda: self.rng.choice(NEWS_HOSTS)  # noqa: E731

        # Self posts: text on Reddit itself, never fetched.
        cases["self_post"] = []
        for _ in range(12):
            t = self.topic()
            rec = self.submit("", selftext="\n\n".join(self.w.body(t, 40, 120)), is_self=True)
            rec["url"] = f"https://www.reddit.com{rec['permalink']}"
            rec["domain"] = f"self.{rec['subreddit']}"
            cases["self_post"].append(rec["id"])

        # NSFW and low-karma posts link to real pages (fetched if the filters are relaxed).
        cases["nsfw"] = []
        for _ in range(6):
            a = self.article(host())
            self.serve(a)
            self.submit(a.url, over_18=True)
            cases["nsfw"].append(a.url)
        cases["low_karma"] = []
        for i in range(15):
            a = self.article(host())
            self.serve(a)
            self.submit(a.url, score=i % 3)
            cases["low_karma"].append(a.url)
        a = self.article(host())
        self.serve(a)
        self.submit(a.url, score=1)
        self.submit(a.url, score=2)
        cases["karma_sum_only"] = a.url

        cases["wikipedia"] = list(WIKI_URLS)
        cases["media"] = list(MEDIA_URLS)
        cases["reddit"] = list(REDDIT_LINKS)
        cases["bad_scheme"] = list(BAD_SCHEME_URLS)
        cases["malformed_url"] = list(MALFORMED_URLS)
        for url in (*WIKI_URLS, *MEDIA_URLS, *REDDIT_LINKS, *BAD_SCHEME_URLS, *MALFORMED_URLS):
            self.submit(url)

        # One article each under several spellings: fetched once after URL canonicalisation.
        cases["spellings"] = []
        for _ in range(3):
            a = self.article(host())
            self.serve(a)
            h, path = a.url.split("/", 3)[2], "/" + a.url.split("/", 3)[3]
            posted = [
                a.url,
                f"https://www.{h}{path}/",
                f"HTTPS://{h.upper()}{path}?utm_source=reddit&utm_medium=social",
                f"https://{h}:443{path}#comments",
                f"https://{h}{path}?fbclid=IwAR0demo{self.rng.randint(100, 999)}&utm_campaign=feed",
                f"https://{h}{path.replace('-', '%2D', 1)}",
            ]
            for url in posted[: self.rng.randint(4, 6)]:
                self.submit(url)
            cases["spellings"].append({"primary": a.url, "posted": posted})

        # Syndicated exact copies: the same article text under another site's chrome.
        cases["exact_duplicates"] = []
        for _ in range(6):
            a = self.article(host())
            self.serve(a)
            copy_url = self.new_url(SYNDICATOR, a.title)
            copy = _Article(copy_url, a.title, list(a.paragraphs), a.author, a.published + 7200)
            self.serve(copy)
            self.submit(a.url)
            self.submit(copy_url)
            cases["exact_duplicates"].append({"original": a.url, "copies": [copy_url]})

        # Near-duplicates: lightly edited copies on a mirror site.
        cases["near_duplicates"] = []
        for _ in range(6):
            t = self.topic()
            a = self.article(host(), t)
            while a.words < 400:
                a.paragraphs.append(self.w.paragraph(t))
            self.serve(a)
            copy_url = self.new_url(MIRROR, a.title)
            edited = self.w.near_copy(a.paragraphs, t)
            copy = _Article(copy_url, a.title, edited, a.author, a.published + 86400)
            self.serve(copy)
            self.submit(a.url)
            self.submit(copy_url)
            cases["near_duplicates"].append({"original": a.url, "copy": copy_url})

        cases["short"] = []
        for _ in range(10):
            a = self.article(host(), short=True)
            self.serve(a)
            self.submit(a.url)
            cases["short"].append(a.url)

        # Non-English pages; the first German one is served as ISO-8859-1.
        cases["non_english"] = []
        for i, (lang, templates, fill) in enumerate(
            (("de", GERMAN, GERMAN_FILL), ("de", GERMAN, GERMAN_FILL), ("fr", FRENCH, FRENCH_FILL))
        ):
            paragraphs = self.w.foreign(templates, fill)
            title = paragraphs[0].split(".")[0][:70]
            url = self.new_url(FOREIGN_HOSTS[lang], f"{lang} story {i + 1}")
            a = _Article(url, title, paragraphs, self.w.person(), BASE_TIME - 86400, lang)
            self.demo.articles[url] = a
            if i == 0:
                self.serve(a, charset="iso-8859-1")
            else:
                self.serve(a, header_charset=(lang != "fr"))  # fr: charset only in <meta>
            self.submit(url, subreddit="europe", title=title)
            cases["non_english"].append({"url": url, "lang": lang})

        cases["not_found"] = []
        for _ in range(5):
            url = self.new_url(host(), self.w.headline(self.topic()))
            self.demo.responses.append(_not_found(url, BASE_TIME))
            self.submit(url)
            cases["not_found"].append(url)

        # Redirects: 301 to another host (absolute), 302 within a host (relative Location).
        cases["redirects"] = []
        for status in (301, 302):
            target = self.article(host())
            self.serve(target)
            src = self.new_url(host(), target.title + " old")
            location = target.url if status == 301 else "/" + target.url.split("/", 3)[3]
            if status == 302:
                code = _b36(self.rng.randint(10**5, 10**6))
                src = f"https://{target.url.split('/')[2]}/go/{code}"
            self.demo.responses.append(_redirect(src, location, status, BASE_TIME))
            self.submit(src)
            cases["redirects"].append({"from": src, "to": target.url, "status": status})

        pdf_url = f"https://{host()}/downloads/annual-report"
        body = b"%PDF-1.4\n% demo, not a real document\n" + bytes(range(256)) * 4
        headers = [("Content-Type", "application/pdf"), ("Content-Length", str(len(body)))]
        self.demo.responses.append(_Response(pdf_url, 200, "OK", headers, body, BASE_TIME))
        self.submit(pdf_url)
        cases["non_html"] = [pdf_url]

        cases["missing_from_warc"] = []
        for _ in range(2):
            url = self.new_url(host(), self.w.headline(self.topic()))
            self.submit(url)
            cases["missing_from_warc"].append(url)

        # The rest: ordinary articles, about one in ten reposted to a second subreddit.
        special = len(self.demo.submissions)
        if n_submissions < special + 20:
            raise ValueError(f"n_submissions={n_submissions}: need at least {special + 20}")
        cases["articles"] = []
        while len(self.demo.submissions) < n_submissions:
            a = self.article(host())
            self.serve(a)
            self.submit(a.url)
            cases["articles"].append(a.url)
            if self.rng.random() < 0.1 and len(self.demo.submissions) < n_submissions:
                self.submit(a.url)
        return self.demo


def _bad_lines(rng: random.Random, good: list[str], n: int) -> list[tuple[str, str]]:
    """Malformed lines of the kinds real dumps have: truncated JSON, missing or mistyped fields."""
    out = []
    for i in range(n):
        rec = json.loads(good[rng.randrange(len(good))])
        kind = ("truncated_json", "missing_url", "bad_score_type")[i % 3]
        if kind == "truncated_json":
            line = json.dumps(rec)
            line = line[: len(line) * 3 // 5]
        elif kind == "missing_url":
            rec.pop("url")
            line = json.dumps(rec)
        else:
            rec["score"] = "n/a"
            line = json.dumps(rec)
        out.append((kind, line))
    return out


def _dump_bytes(demo: _Demo, rng: random.Random, bad_fraction: float) -> tuple[bytes, list]:
    """Shuffle into time order, add malformed lines, and compress like the real dumps."""
    import zstandard

    subs = demo.submissions
    rng.shuffle(subs)
    t = BASE_TIME
    for i, rec in enumerate(subs):
        t += rng.randint(30, 900)
        rec["created_utc"] = t
        if i % 5 == 0:  # the newer layout: float times and a _meta block
            rec["created_utc"] = float(t)
            rec["_meta"] = {"retrieved_2nd_on": t + 86400 * 400}
    lines: list[tuple[str, str | None]] = [
        (json.dumps(rec, ensure_ascii=False, separators=(",", ":")), None) for rec in subs
    ]
    n_bad = round(bad_fraction * len(lines)) if bad_fraction > 0 else 0
    for kind, line in _bad_lines(rng, [text for text, _ in lines], n_bad):
        lines.insert(rng.randrange(1, len(lines)), (line, kind))
    bad_lines = [{"line": i + 1, "kind": k} for i, (_, k) in enumerate(lines) if k]
    raw = ("\n".join(text for text, _ in lines) + "\n").encode("utf-8")
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=ZSTD_WINDOW_LOG)
    buf = io.BytesIO()
    with zstandard.ZstdCompressor(compression_params=params).stream_writer(buf, closefd=False) as w:
        w.write(raw)
    return buf.getvalue(), bad_lines


def _record_id(seed: int, url: str, n: int) -> str:
    digest = hashlib.sha256(f"{seed}:{n}:{url}".encode()).digest()[:16]
    return f"<urn:uuid:{uuid.UUID(bytes=digest)}>"


def _warc_bytes(responses: list[_Response], seed: int, name: str) -> bytes:
    """The responses as one gzipped WARC, with fixed dates and record ids (byte-reproducible)."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    info = b"software: webtext demo generator\r\nformat: WARC File Format 1.0\r\n"
    info_headers = StatusAndHeaders(
        "",
        [
            ("WARC-Type", "warcinfo"),
            ("WARC-Record-ID", _record_id(seed, "warcinfo", 0)),
            ("WARC-Filename", name),
            ("WARC-Date", "2019-05-01T00:00:00Z"),
        ],
        protocol="WARC/1.0",
    )
    writer.write_record(
        writer.create_warc_record(
            "",
            "warcinfo",
            payload=io.BytesIO(info),
            length=len(info),
            warc_headers=info_headers,
            warc_content_type="application/warc-fields",
        )
    )
    for n, r in enumerate(responses, start=1):
        warc_date = datetime.fromtimestamp(r.ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        http = StatusAndHeaders(f"{r.status} {r.reason}", r.headers, protocol="HTTP/1.1")
        record = writer.create_warc_record(
            r.url,
            "response",
            payload=io.BytesIO(r.body),
            length=len(r.body),
            http_headers=http,
            warc_headers_dict={
                "WARC-Record-ID": _record_id(seed, r.url, n),
                "WARC-Date": warc_date,
            },
        )
        writer.write_record(record)
    return buf.getvalue()


def _test_sets(demo: _Demo, rng: random.Random) -> dict[str, tuple[str, dict[str, Any]]]:
    """``overlap``: paragraphs copied from kept pages among fresh text; ``clean``: none."""

    def clean_paragraph() -> str:
        sentences = []
        for _ in range(rng.randint(3, 5)):
            t = rng.choice(CLEAN)
            sentences.append(re.sub(r"\{(\w+)\}", lambda m: rng.choice(CLEAN_FILL[m.group(1)]), t))
        return " ".join(sentences)

    sources = rng.sample(demo.cases["articles"], 4)
    copied = [demo.articles[u].paragraphs[0] for u in sources]
    fresh = [clean_paragraph() for _ in range(12)]
    overlap_paras = fresh[:]
    for i, p in enumerate(copied):
        overlap_paras.insert(1 + i * 3, p)
    words_copied = sum(len(p.split()) for p in copied)
    words_total = sum(len(p.split()) for p in overlap_paras)
    clean_paras = [clean_paragraph() for _ in range(16)]
    return {
        "overlap": (
            "\n\n".join(overlap_paras) + "\n",
            {
                "paragraphs": len(overlap_paras),
                "copied_paragraphs": len(copied),
                "copied_from": sources,
                "copied_word_fraction": round(words_copied / words_total, 4),
            },
        ),
        "clean": (
            "\n\n".join(clean_paras) + "\n",
            {"paragraphs": len(clean_paras), "copied_paragraphs": 0, "copied_word_fraction": 0.0},
        ),
    }


def _expected(cases: dict[str, Any]) -> dict[str, int]:
    """Documents a correct pipeline keeps with the default config (all languages kept)."""
    fetched = (
        len(set(cases["articles"]))
        + len(cases["spellings"])
        + 2 * len(cases["exact_duplicates"])
        + 2 * len(cases["near_duplicates"])
        + len(cases["short"])
        + len(cases["non_english"])
        + len(cases["redirects"])
        + len(cases["archived"])  # recovered from the web archive
    )
    after_quality = fetched - len(cases["short"])
    after_exact = after_quality - len(cases["exact_duplicates"])
    return {
        "documents_extracted": fetched,
        "documents_after_quality": after_quality,
        "documents_after_exact_dedup": after_exact,
        "documents_after_near_dedup": after_exact - len(cases["near_duplicates"]),
    }


def generate_demo(
    out_dir: str, seed: int = 0, n_submissions: int = 480, bad_fraction: float = 0.006
) -> DemoPaths:
    """Write the demo dump, WARC, test sets and truth into ``out_dir`` (skips if up to date).

    ``bad_fraction`` is the share of malformed dump lines (0.006 gives 3 of about 480, under
    the default 1% tolerance of ``source.max_bad_fraction``).
    """
    if not 0 <= bad_fraction < 1:
        raise ValueError(f"bad_fraction={bad_fraction!r}: must be within [0, 1)")
    paths = DemoPaths(
        root=out_dir,
        dump=storage.join(out_dir, DUMP_NAME),
        warc=storage.join(out_dir, WARC_NAME),
        test_sets=storage.join(out_dir, "test_sets"),
        truth=storage.join(out_dir, "truth.json"),
        archive_warc=storage.join(out_dir, ARCHIVE_WARC_NAME),
    )
    params = {
        "generator": _generator_digest(),
        "seed": seed,
        "n_submissions": n_submissions,
        "bad_fraction": bad_fraction,
    }
    stamp_path = storage.join(out_dir, "demo.json")
    if _up_to_date(stamp_path, params):
        log.info("demo data in %s is up to date", out_dir)
        return paths

    builder = _Builder(seed)
    demo = builder.build(n_submissions)
    captures = builder.archived(seed)
    rng = random.Random(seed + 1)
    sets = _test_sets(demo, rng)
    dump, bad_lines = _dump_bytes(demo, rng, bad_fraction)
    warc = _warc_bytes(demo.responses, seed, WARC_NAME)
    files: dict[str, bytes] = {
        DUMP_NAME: dump,
        WARC_NAME: warc,
        ARCHIVE_WARC_NAME: _warc_bytes(captures, seed, ARCHIVE_WARC_NAME),
    }
    index = {}
    for name, (text, meta) in sets.items():
        files[f"test_sets/{name}.txt"] = text.encode("utf-8")
        index[name] = {"file": f"{name}.txt", **meta}
    files["test_sets/index.json"] = _json(index)
    truth = {
        **params,
        "dump_lines": len(demo.submissions) + len(bad_lines),
        "submissions": len(demo.submissions),
        "bad_lines": bad_lines,
        "warc_responses": len(demo.responses),
        "archive_captures": len(captures),
        "cases": demo.cases,
        "words": {u: a.words for u, a in sorted(demo.articles.items())},
        "expected": _expected(demo.cases),
    }
    files["truth.json"] = _json(truth)
    for rel, data in files.items():
        storage.write_bytes(storage.join(out_dir, rel), data)
    stamp = {**params, "files": {rel: hashlib.sha256(d).hexdigest() for rel, d in files.items()}}
    storage.write_bytes(stamp_path, _json(stamp))
    log.info(
        "demo data: %d submissions, %d responses, %.1f MB of WARC in %s",
        len(demo.submissions), len(demo.responses), len(warc) / 1e6, out_dir,
    )  # fmt: skip
    return paths


def _generator_digest() -> str:
    """This module's source hash: editing the generator invalidates earlier output."""
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _up_to_date(stamp_path: str, params: dict[str, Any]) -> bool:
    """True when the stamp matches ``params`` and every file it lists is there, unchanged."""
    if not storage.exists(stamp_path):
        return False
    try:
        stamp = json.loads(storage.read_text(stamp_path))
    except ValueError:
        return False
    if {k: stamp.get(k) for k in params} != params:
        return False
    root = stamp_path.rsplit("/", 1)[0]
    for rel, sha in stamp.get("files", {}).items():
        path = storage.join(root, rel)
        if not storage.exists(path) or _sha256_raw(path) != sha:
            return False
    return True


def _sha256_raw(path: str) -> str:
    """sha256 of the bytes on disk (pyarrow streams would decompress ``.zst``/``.gz``)."""
    fs, p = storage.resolve(path)
    h = hashlib.sha256()
    with fs.open_input_stream(p, compression=None) as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(sys.argv) != 2:
        sys.exit("usage: python -m webtext.demo.generate OUT_DIR")
    p = generate_demo(sys.argv[1])
    sys.stdout.write(f"{p.dump}\n{p.warc}\n{p.archive_warc}\n{p.test_sets}\n{p.truth}\n")
