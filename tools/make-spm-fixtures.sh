#!/bin/sh
# Regenerates the SentencePiece fixtures of test/tokenizer-spm.test.ts with Debian's
# sentencepiece (apt-get install sentencepiece; tested with 0.1.97). Run from the repo root
# after `npm run build`. Not needed by the test suite, which only reads the committed files.
set -eu
out=test/fixtures/tokenizer
tmp=$(mktemp -d)
node dist/tools/brown-split.js "$tmp"
# (run inside $tmp with relative names: spm_train stores input/model_prefix in the model)
(cd "$tmp" && spm_train --input=train.txt --model_prefix=spm-bpe2k --model_type=bpe --vocab_size=2000 \
  --split_digits=true --byte_fallback=true --num_threads=2 --minloglevel=2)
cp "$tmp/spm-bpe2k.model" "$out/spm-bpe2k.model"
cp "$tmp/heldout.txt" "$out/heldout.txt"
spm_encode --model="$out/spm-bpe2k.model" --output_format=id < "$out/heldout.txt" > "$out/spm-bpe2k.heldout.ids"
spm_encode --model="$out/spm-bpe2k.model" --output_format=piece < "$out/heldout.txt" > "$out/spm-bpe2k.heldout.pieces"
rm -rf "$tmp"
wc -c "$out"/spm-bpe2k.*

# A second model exercising other options: identity normalizer without removing extra
# whitespace, whitespace-only pieces, user-defined and control symbols, short pieces, and
# character_coverage < 1 without byte fallback (unknown characters -> merged <unk>).
tmp=$(mktemp -d)
node dist/tools/brown-split.js "$tmp"
printf 'a<sep>b the<cls> x  y\n   lead  and  trail   \n<sep><sep>\n' >> "$tmp/heldout.txt"
(cd "$tmp" && spm_train --input=train.txt --model_prefix=spm-opts --model_type=bpe --vocab_size=1200 \
  --normalization_rule_name=identity --remove_extra_whitespaces=false --allow_whitespace_only_pieces=true \
  --user_defined_symbols='<sep>,the' --control_symbols='<cls>' --max_sentencepiece_length=6 \
  --character_coverage=0.98 --num_threads=2 --minloglevel=2)
cp "$tmp/spm-opts.model" "$out/spm-opts.model"
cp "$tmp/heldout.txt" "$out/heldout-opts.txt"
spm_encode --model="$out/spm-opts.model" --output_format=id < "$out/heldout-opts.txt" > "$out/spm-opts.heldout.ids"
spm_decode --model="$out/spm-opts.model" --input_format=id < "$out/spm-opts.heldout.ids" > "$out/spm-opts.heldout.decoded"
rm -rf "$tmp"
wc -c "$out"/spm-opts.*
