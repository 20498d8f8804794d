#!/bin/sh
# Regenerates the SentencePiece fixtures of test/tokenizer-spm.test.ts with Debian's
# sentencepiece (apt-get install sentencepiece; tested with 0.1.97). Run from the repo root
# after `npm run build`. Not needed by the test suite, which only reads the committed files.
set -eu
out=test/fixtures/tokenizer
tmp=$(mktemp -d)
node dist/tools/brown-split.js "$tmp"
spm_train --input="$tmp/train.txt" --model_prefix="$tmp/spm-bpe2k" --model_type=bpe --vocab_size=2000 \
  --split_digits=true --byte_fallback=true --num_threads=2 --minloglevel=2
cp "$tmp/spm-bpe2k.model" "$out/spm-bpe2k.model"
cp "$tmp/heldout.txt" "$out/heldout.txt"
spm_encode --model="$out/spm-bpe2k.model" --output_format=id < "$out/heldout.txt" > "$out/spm-bpe2k.heldout.ids"
spm_encode --model="$out/spm-bpe2k.model" --output_format=piece < "$out/heldout.txt" > "$out/spm-bpe2k.heldout.pieces"
rm -rf "$tmp"
wc -c "$out"/spm-bpe2k.*
