/**
 * Unicode script of a code point (as SentencePiece's unicode_script uses it to stop pieces from
 * mixing scripts), computed with the JS engine's \p{Script=...} tables and cached.
 * Unlisted/unassigned code points count as Common, like SentencePiece's default.
 */
const NAMES = (
  'Latin Common Inherited Greek Cyrillic Han Hiragana Katakana Hangul Arabic Hebrew Devanagari Thai ' +
  'Adlam Ahom Anatolian_Hieroglyphs Armenian Avestan Balinese Bamum Bassa_Vah Batak Bengali Bhaiksuki Bopomofo Brahmi ' +
  'Braille Buginese Buhid Canadian_Aboriginal Carian Caucasian_Albanian Chakma Cham Cherokee Chorasmian Coptic Cuneiform ' +
  'Cypriot Cypro_Minoan Deseret Dives_Akuru Dogra Duployan Egyptian_Hieroglyphs Elbasan Elymaic Ethiopic Georgian ' +
  'Glagolitic Gothic Grantha Gujarati Gunjala_Gondi Gurmukhi Hanifi_Rohingya Hanunoo Hatran Imperial_Aramaic ' +
  'Inscriptional_Pahlavi Inscriptional_Parthian Javanese Kaithi Kannada Kawi Kayah_Li Kharoshthi Khitan_Small_Script Khmer ' +
  'Khojki Khudawadi Lao Lepcha Limbu Linear_A Linear_B Lisu Lycian Lydian Mahajani Makasar Malayalam Mandaic Manichaean ' +
  'Marchen Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao Modi Mongolian ' +
  'Mro Multani Myanmar Nabataean Nag_Mundari Nandinagari New_Tai_Lue Newa Nko Nushu Nyiakeng_Puachue_Hmong Ogham Ol_Chiki ' +
  'Old_Hungarian Old_Italic Old_North_Arabian Old_Permic Old_Persian Old_Sogdian Old_South_Arabian Old_Turkic Old_Uyghur ' +
  'Oriya Osage Osmanya Pahawh_Hmong Palmyrene Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi Rejang Runic Samaritan ' +
  'Saurashtra Sharada Shavian Siddham SignWriting Sinhala Sogdian Sora_Sompeng Soyombo Sundanese Syloti_Nagri Syriac ' +
  'Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Takri Tamil Tangsa Tangut Telugu Thaana Tibetan Tifinagh Tirhuta Toto ' +
  'Ugaritic Vai Vithkuqi Wancho Warang_Citi Yezidi Yi Zanabazar_Square'
).split(' ');

const TESTS: [number, RegExp][] = [];
NAMES.forEach((name, i) => {
  try {
    TESTS.push([i, new RegExp(`^\\p{Script=${name}}$`, 'u')]);
  } catch {
    /* script unknown to this engine's Unicode version */
  }
});

export const SCRIPT_COMMON = 1;
export const SCRIPT_INHERITED = 2;
export const SCRIPT_HAN = 5;
export const SCRIPT_HIRAGANA = 6;
export const SCRIPT_KATAKANA = 7;

const cache = new Map<number, number>();

/** Script number of a code point (indices into an internal list; compare for equality only). */
export function scriptOf(cp: number): number {
  if (cp < 0x80) {
    if ((cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a)) return 0;
    return SCRIPT_COMMON;
  }
  let s = cache.get(cp);
  if (s === undefined) {
    s = SCRIPT_COMMON;
    const ch = String.fromCodePoint(cp);
    for (const [i, re] of TESTS)
      if (re.test(ch)) {
        s = i;
        break;
      }
    cache.set(cp, s);
  }
  return s;
}
