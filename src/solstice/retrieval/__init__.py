"""The shared retrieval layer: documents, grouping into long units, chunking, BM25 and dense
indexes with MaxP scoring, and budgeted selection. Metrics live in `solstice.metrics.retrieval`.

    documents   Document, Corpus (JSONL / DPR TSV), Unit, make_unit, document_units
    adjacency   links / mentions / sequence / knn adjacencies (combine with '+')
    grouping    group_documents (LongRAG), passage_grouping, random_grouping, partition_problems
    chunking    chunk_units (window / document / packed), split_spans
    encoders    load_encoder (minilm embedded, any sentence-transformers model), FunctionEncoder
    index       UnitIndex.build(units, backend="bm25"|"dense").search(queries, k) -> Hit lists; save/load
    select      select(hits, tokens, k=..., budget=...)
    context     fit_context: the longest ranked prefix whose prompt fits a reader's window or budget

Token counters (minilm, the retrieval default; words; hf:<tokenizer>; tiktoken:<enc>; a Model) live in
`solstice.models.tokens`.

Importing this package is cheap: heavy libraries (bm25s, sentence-transformers, faiss) load on use.
"""

from solstice.retrieval.documents import Corpus, Document, Unit, document_units, make_unit

__all__ = ["Corpus", "Document", "Unit", "document_units", "make_unit"]
