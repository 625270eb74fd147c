# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Regenerate the shipped CLIP BPE tokenizer files from the `openai-clip` PyPI package.

OpenAI's CLIP (MIT licence) ships its byte-pair vocabulary as ``bpe_simple_vocab_16e6.txt.gz``;
Hugging Face's ``CLIPTokenizer`` reads the same vocabulary as ``vocab.json`` + ``merges.txt``.
Run once with ``pip install --no-deps openai-clip`` (never import ``clip``: it pulls torchvision).
"""

import gzip
import importlib.util
import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parents[1] / 'vpd_ros/vpd_ros/model/assets/clip_tokenizer'


def bytes_to_unicode() -> dict:
    """Map every byte to a printable unicode character, as GPT-2/CLIP BPE does."""
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1))
    bs += list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def main() -> int:
    """Write vocab.json and merges.txt next to the model package."""
    spec = importlib.util.find_spec('clip')
    if spec is None or spec.submodule_search_locations is None:
        print('install it first: pip install --no-deps openai-clip', file=sys.stderr)
        return 1
    gz = pathlib.Path(list(spec.submodule_search_locations)[0]) / 'bpe_simple_vocab_16e6.txt.gz'
    lines = gzip.open(gz).read().decode('utf-8').split('\n')
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + '</w>' for v in vocab]
    vocab += [''.join(m) for m in merges]
    vocab += ['<|startoftext|>', '<|endoftext|>']
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / 'vocab.json').write_text(json.dumps({t: i for i, t in enumerate(vocab)},
                                               ensure_ascii=False))
    (OUT / 'merges.txt').write_text('#version: 0.2\n' + '\n'.join(' '.join(m) for m in merges)
                                    + '\n', encoding='utf-8')
    print(f'wrote {len(vocab)} tokens and {len(merges)} merges to {OUT}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
