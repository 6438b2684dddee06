"""One feature over HTTP: statistics, examples on full contexts, labels with scores, dispute, history."""

from __future__ import annotations

from fastapi import APIRouter

from labeler import jobs
from labeler.store import review as store_review
from labeler.store.review import FeatureDetail
from labeler.web.contexts import group_examples, try_tokens
from labeler.web.deps import CurrentUser, IdPath, IndexPath, SessionDep
from labeler.web.schemas import ExampleOut, FeatureOut, TokenOut, TryIn, TryOut

router = APIRouter(tags=["features"])


def feature_out(detail: FeatureDetail) -> FeatureOut:
    examples = [
        ExampleOut(
            kind=ex.kind,
            quantile=ex.quantile,
            rank=ex.rank,
            seq_index=ex.seq_index,
            max_activation=ex.max_activation,
            full_context=ex.full_context,
            tokens=[TokenOut(text=t.text, activation=t.activation) for t in ex.tokens],
        )
        for group in group_examples(detail.examples, detail.max_activation)
        for ex in group.examples
    ]
    fields = {name: getattr(detail, name) for name in FeatureOut.model_fields if name != "examples"}
    return FeatureOut.model_validate({**fields, "examples": examples})


@router.get("/features/{feature_id}", response_model=FeatureOut)
def get_feature(feature_id: IdPath, user: CurrentUser, session: SessionDep) -> FeatureOut:
    return feature_out(store_review.load_feature_detail(session, feature_id=feature_id))


@router.get("/saes/{sae_id}/features/{feature_index}", response_model=FeatureOut)
def get_feature_by_index(sae_id: IdPath, feature_index: IndexPath, user: CurrentUser, session: SessionDep) -> FeatureOut:
    feature_id = store_review.find_feature_id(session, sae_id=sae_id, feature_index=feature_index)
    return feature_out(store_review.load_feature_detail(session, feature_id=feature_id))


@router.post("/features/{feature_id}/try", response_model=TryOut)
def try_feature(feature_id: IdPath, body: TryIn, user: CurrentUser, session: SessionDep) -> TryOut:
    """This feature's activation on every token of any text (runs the model: on the gpu queue if any)."""
    detail = store_review.load_feature_detail(session, feature_id=feature_id, with_examples=False)
    session.rollback()  # end the read transaction before a possibly long model run
    pairs = jobs.try_text(sae_id=detail.sae_id, feature_index=detail.feature_index, text=body.text)
    tokens = try_tokens(pairs, detail.max_activation)
    return TryOut(tokens=[TokenOut(text=t.text, activation=t.activation) for t in tokens])
