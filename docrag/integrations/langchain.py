"""A LangChain retriever over a docrag index.

>>> from docrag.integrations.langchain import DocragRetriever  # doctest: +SKIP
>>> docs = DocragRetriever(index="my-index", k=4).invoke("fleet size")  # doctest: +SKIP
>>> docs[0].metadata["page"], docs[0].metadata["bbox"]  # doctest: +SKIP
(2, (72.0, 310.5, 290.1, 402.0))
"""

from __future__ import annotations

from typing import Any, Optional

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, PrivateAttr

from docrag.types import Hit

__all__ = ["DocragRetriever", "hit_to_document"]


def hit_to_document(hit: Hit) -> Document:
    """A LangChain ``Document`` carrying the hit's text and provenance."""
    metadata = hit.to_json()
    text = metadata.pop("text")
    metadata["bbox"] = list(hit.bbox)
    return Document(page_content=text, metadata=metadata)


class DocragRetriever(BaseRetriever):
    """Retrieve chunks from a docrag index as LangChain ``Document`` objects.

    Args:
        index: An index directory path or a :class:`docrag.Index`.
        k: Number of documents to return.
        kind: Only return chunks of this kind (``any`` for all).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any = Field(description="Index directory (str/Path) or a docrag.Index.")
    k: int = Field(5, ge=1, description="Number of documents to return.")
    kind: Optional[str] = Field(None, description="Only chunks of this kind (text, table, figure, ...).")
    search_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Other search options (docrag.config.SearchOptions fields: mode, "
        "source, pages, tags, group='page' for one hit per page, ...).")
    _index: Any = PrivateAttr(default=None)

    def _get_index(self) -> Any:
        if self._index is None:
            from docrag.api import Index

            self._index = self.index if isinstance(self.index, Index) else Index(self.index)
        return self._index

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self._get_index().search(query, k=self.k, kind=self.kind, **self.search_kwargs)
        return [hit_to_document(h) for h in hits]
