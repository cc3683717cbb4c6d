"""The compiled SEARCH matcher (search.compile_key) answers exactly as the reference evaluator
(search.matches) on random search trees and messages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from suite.mail.imap import search as S
from suite.mail.imap.commands import (
    SearchAnd,
    SearchCriterion,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSet,
    SequenceSet,
)
from suite.mail.imap.view import Msg
from suite.mail.mime.searchtext import SearchText, fold

FLAGS = ["\\Seen", "\\seen", "\\Deleted", "\\Flagged", "\\Answered", "\\Draft", "$Junk", "$junk", "Work"]
WORDS = ["Alice", "alice", "Straße", "STRASSE", "ﬁle", "file", "report", "", "Ünïcode", "x"]
HEADERS = ["from", "to", "cc", "bcc", "subject", "x-mailer"]

words = st.sampled_from(WORDS)
criterion = st.one_of(
    st.sampled_from(["ALL", "OLD", "NEW", "RECENT"]).map(lambda k: SearchCriterion(k)),
    st.sampled_from(
        ["ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN", "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN"]
    ).map(lambda k: SearchCriterion(k)),
    st.tuples(st.sampled_from(["KEYWORD", "UNKEYWORD"]), st.sampled_from(["$Junk", "$JUNK", "work", "none"])).map(
        lambda t: SearchCriterion(*t)
    ),
    st.tuples(st.sampled_from(["FROM", "TO", "CC", "BCC", "SUBJECT", "BODY", "TEXT"]), words).map(
        lambda t: SearchCriterion(*t)
    ),
    st.tuples(st.sampled_from(HEADERS + ["X-MAILER", "Subject"]), words).map(lambda t: SearchCriterion("HEADER", t)),
    st.tuples(st.sampled_from(["LARGER", "SMALLER"]), st.integers(0, 3000)).map(lambda t: SearchCriterion(*t)),
    st.integers(0, 12).map(SearchModSeq),
    st.tuples(st.integers(1, 12), st.integers(1, 12), st.booleans()).map(
        lambda t: SearchSet(SequenceSet(((t[0], t[1]),)), uid=t[2])
    ),
    st.tuples(st.integers(1, 12), st.booleans()).map(lambda t: SearchSet(SequenceSet(((t[0], None),)), uid=t[1])),
    st.just(SearchSet(SequenceSet(saved=True))),
)
keys = st.recursive(
    criterion,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda ks: SearchAnd(tuple(ks))),
        st.tuples(inner, inner).map(lambda t: SearchOr(*t)),
        inner.map(SearchNot),
    ),
    max_leaves=6,
)


@st.composite
def mailbox(draw):
    n = draw(st.integers(0, 8))
    msgs, texts = [], {}
    uid = 0
    for _ in range(n):
        uid += draw(st.integers(1, 3))
        flags = tuple(draw(st.lists(st.sampled_from(FLAGS), max_size=3, unique=True)))
        msgs.append(Msg(uid, draw(st.integers(1, 12)), flags, draw(st.integers(0, 3000)), 1.7e9, "b" * 64))
        if draw(st.booleans()):
            headers = {
                h: [fold(" ".join(draw(st.lists(words, max_size=3))))]
                for h in draw(st.lists(st.sampled_from(HEADERS), max_size=4, unique=True))
            }
            texts[uid] = SearchText(headers=headers, body=fold(" ".join(draw(st.lists(words, max_size=4)))))
    saved = {m.uid for m in msgs if draw(st.booleans())}
    return msgs, texts, saved


@settings(max_examples=400, deadline=None)
@given(keys, mailbox())
def test_compiled_matches_reference(key, box):
    msgs, texts, saved = box
    ctx = S.Context(len(msgs), msgs[-1].uid if msgs else 0, saved, texts=texts)
    match = S.compile_key(key, ctx)
    for seq, m in enumerate(msgs, 1):
        assert match(seq, m) == S.matches(key, seq, m, ctx), (key, m)
