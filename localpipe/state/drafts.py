"""Pipeline drafts (``PipelineDraft``, docs/publishing.md): a row per draft naming its frozen
pipeline's objects (declaration, sources) so that gc keeps them, and its graph a
``pipeline_graph`` row as a published pipeline's is."""

from __future__ import annotations

from localpipe.errors import ErrorResponseException
from localpipe.state.db import Database
from localpipe.state.models import now
from localpipe.state.publishing import stored_graph


class DraftRecords:
    """The ``pipeline_draft`` table."""

    def __init__(self, database: Database):
        self.database = database
        self.t = database.tables

    def create(self, row: dict, graph: dict) -> None:
        """Record a draft: ``row`` holds its columns, ``graph`` its planned graph."""
        with self.database.write():
            self.t.PipelineDraft.create(pipeline=stored_graph(self.t, graph), **row)

    def update(self, draft_id: str, changes: dict, graph: dict | None = None) -> None:
        """Change the draft's columns in ``changes`` (and its graph when given); the draft must exist."""
        t = self.t
        with self.database.write():
            self.draft(draft_id)
            if graph is not None:
                changes = {**changes, "pipeline": stored_graph(self.t, graph)}
            t.PipelineDraft.update(updated_at=now(), **changes).where(t.PipelineDraft.draft_id == draft_id).execute()

    def submitted(self, draft_id: str, run_id: int) -> None:
        """Note the run last submitted from the draft (in the transaction that records the run)."""
        t = self.t
        t.PipelineDraft.update(last_submitted_run=run_id).where(t.PipelineDraft.draft_id == draft_id).execute()

    def delete(self, draft_id: str) -> None:
        t = self.t
        with self.database.write():
            self.draft(draft_id)
            t.PipelineDraft.delete().where(t.PipelineDraft.draft_id == draft_id).execute()

    def draft(self, draft_id: str) -> dict:
        """The draft ``draft_id`` with its ``graph``; ErrorResponseException, as the SDK's, when there is none."""
        row = self._query().where(self.t.PipelineDraft.draft_id == str(draft_id)).dicts().first()
        if row is None:
            raise ErrorResponseException(
                f'no pipeline draft has id "{draft_id}" (deleted, or never created here): see `localpipe drafts` '
                "for the ids"
            )
        return row

    def drafts(self, tags: dict | None = None) -> list[dict]:
        """Every draft, oldest first; with ``tags``, those that have each tag with its value."""
        rows = list(self._query().order_by(self.t.PipelineDraft.id).dicts())
        wanted = {str(k): str(v) for k, v in (tags or {}).items()}
        return [r for r in rows if all(k in r["tags"] and str(r["tags"][k]) == v for k, v in wanted.items())]

    def _query(self):
        t = self.t
        return t.PipelineDraft.select(
            t.PipelineDraft, t.PipelineGraph.graph, t.PipelineGraph.digest.alias("graph_id")
        ).join(t.PipelineGraph)
