// People, places, organisations and street addresses. No checksum can confirm these, so each candidate is a run
// of capitalised words judged by what surrounds it: a title ("Dr."), a phrase ("my name is", "works at"), a form
// label ("Name:", "Billing address:"), a signature, a table header, a street or company suffix, or a gazetteer
// of given names, surnames and places (generated from the lexicon the `compromise` package ships).
import { readFileSync } from 'node:fs';
import wordListPath from 'word-list';
import * as gazetteer from './gazetteer.data.js';

export type EntityType = 'PERSON' | 'LOCATION' | 'ORGANIZATION';

export interface EntitySpan {
  type: EntityType;
  start: number;
  end: number;
  /** Evidence strength: a label or a title beats a gazetteer guess when two spans overlap. */
  strength: number;
}

const toSet = (joined: string): ReadonlySet<string> => new Set(joined.split('|'));
const GIVEN = toSet(gazetteer.givenNames);
const SURNAMES = toSet(gazetteer.surnames);
const PLACES = toSet(gazetteer.places);
const ORGS = toSet(gazetteer.organizations);
const LEXICON_COMMON = toSet(gazetteer.common);

let englishWords: ReadonlySet<string> | undefined;
/**
 * Ordinary English words: compromise's lexicon plus the `word-list` package's 275,000 words (read once, on first use),
 * without the words the gazetteer knows as names or places. A capitalised ordinary word is a heading or a sentence
 * start ("Practical Rubber Gloves", "Action Items"), not a name.
 */
function common(): ReadonlySet<string> {
  if (englishWords === undefined) {
    const words = new Set(LEXICON_COMMON);
    for (const w of readFileSync(wordListPath, 'utf8').split('\n')) {
      if (w.length >= 3 && !GIVEN.has(w) && !SURNAMES.has(w) && !PLACES.has(w)) words.add(w);
    }
    englishWords = words;
  }
  return englishWords;
}

// Words that the lexicon lacks in these forms, and that start sentences or headings more often than names do.
const EXTRA_COMMON = new Set(
  ('hi hello hey dear thanks thank please regards best kind cheers sincerely yes no ok okay note notes attached ' +
    'attachment update hope sorry also but and or so then the a an this that these those our your my his her their ' +
    'we you they it he she i if when while after before since as at in on for from to with by of re fwd fw subject ' +
    'monday tuesday wednesday thursday friday saturday sunday january february march april may june july august ' +
    'september october november december today tomorrow yesterday team all everyone customer client support service ' +
    'order invoice ticket account card payment total amount version release product model sku ref reference number ' +
    'street road avenue lane drive city country state region address name first last full company organisation ' +
    'organization phone email mobile tel fax date birth dob id status new old main north south east west central ' +
    'quarterly annual monthly weekly daily report meeting project plan sales marketing finance legal hr it ' +
    'department office head manager director engineer analyst officer president ceo cto cfo vp lead senior junior ' +
    'mr mrs ms dr prof sir madam herr frau mme mlle sr sra srta ing mgr pan pani')
    .split(' '),
);

const HONORIFIC =
  /(?:\b(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Professor|Sir|Dame|Lord|Lady|Rev|Herr|Frau|Mme|Mlle|Monsieur|Madame|Sr|Sra|Srta|Don|Doña|Sig|Signor|Signora|Ing|Mgr|Pan|Pani|Dott|Dhr|Mevr|Capt|Sgt|Col|Gen|Judge|Officer|Nurse|Agent|Detective|Inspector|Senator|Governor)\.?|\bM\.)\s+$/;
const PERSON_BEFORE =
  /(?:\b(?:my name is|name's|i am|i'm|this is|it's|call me|named|called|signed|sincerely|regards|dear|hi|hello|hey|thanks|thank you|attn\.?|attention|c\/o|care of|patient|customer|client|employee|applicant|candidate|tenant|landlord|guest|passenger|cardholder|account holder|beneficiary|recipient|sender|colleague|manager|assistant|husband|wife|son|daughter|mother|father|brother|sister|friend|partner|spouse|contact|ask|met|with|from|by|cc|me llamo|je m'appelle|ich heiße|ich bin|mi chiamo|jmenuji se|nazywam się|mein name ist|je suis|soy)\s*[:,]?\s*)$/i;
const PERSON_INTRO = /\b(?:my name is|name's|i am|i'm|call me|named|called|me llamo|je m'appelle|ich heiße|mi chiamo|jmenuji se|nazywam się|mein name ist)\s*[:,]?\s*$/i;
const ORG_BEFORE =
  /\b(?:work(?:s|ed|ing)? (?:for|at)|employed (?:by|at)|employer|company|organi[sz]ation|firm|vendor|supplier|contractor|client company|join(?:ed|ing)?|hired by|acquired by|subsidiary of|on behalf of|représente|arbeite bei|trabajo en|lavoro presso|pracuji v|pracuję w)\s*[:,]?\s*(?:the\s+)?$/i;
const PLACE_BEFORE =
  /\b(?:live[sd]? in|living in|born in|moved to|moving to|based in|located in|relocat(?:e|ed|ing) to|travel(?:l?ed|l?ing)? to|flight to|flying to|trip to|visit(?:ed|ing)? |resident of|citizen of|native of|near|from|in|to|at|city|town|country|region|state|province|county|wohne in|vivo en|habite à|vivo a|bydlím v|mieszkam w)\s*[:,]?\s*$/i;
const STRONG_PLACE_BEFORE =
  /\b(?:live[sd]? in|living in|born in|moved to|moving to|based in|located in|relocat(?:e|ed|ing) to|resident of|citizen of|native of|wohne in|vivo en|habite à|vivo a|bydlím v|mieszkam w)\s*$/i;

const CAP_WORD_SRC = "\\p{Lu}[\\p{Ll}\\p{M}'’]+(?:-\\p{Lu}[\\p{Ll}\\p{M}'’]+)?";
const ORG_SUFFIX =
  /^(?:Inc|Incorporated|Ltd|Limited|LLC|LLP|LP|PLC|Plc|plc|Corp|Corporation|Co|Company|Group|Holdings|Holding|GmbH|AG|KG|SE|SA|SAS|SARL|S\.A|S\.L|SL|SpA|S\.p\.A|Srl|S\.r\.l|BV|B\.V|NV|N\.V|Oy|Oyj|AB|ASA|AS|A\/S|ApS|Pty|Sp|s\.r\.o|a\.s|Bank|Bancorp|University|Universität|Université|Universidad|Università|Institute|Institut|Foundation|Stiftung|Trust|Hospital|Clinic|Klinikum|Partners|Associates|Solutions|Systems|Technologies|Technology|Tech|Labs|Laboratories|Logistics|Consulting|Services|Industries|Enterprises|Ventures|Capital|Insurance|Assurance|Airlines|Airways|Media|Studios?|Agency|Ministry|Council|School|College|Academy|Software|Pharma|Pharmaceuticals|Motors|Energy|Electric|Telecom|Communications|Networks|Finance|Financial|Bancorp|Brothers|Bros|Sons|Freight|Shipping|Retail|Foods|Hotels?|Resorts?|Restaurants?|Bakery|Café|Cafe|Store|Shop|Market|Partnership|Cooperative|Coop|Society|Association|Federation|Union|Club|Church|Authority|Commission|Department|Office|Bureau|Agentur|Verlag|Werke|Gruppe|Groupe|Grupo|Gruppo|Compañía|Compagnie|Société|Gesellschaft|Spółka|Společnost|Gruppen|Groep|Hermanos|Asociados|Associados|Comércio|Comercio|Serviços|Servicios|Consultores|Ltda|Transport|Transporte|Handel|Bygg|Invest|Konsult|Consult|Data|Design|Partner|Partnere)$/;
// Legal forms written after the name, some in lower case or with a slash: "Kováčová a.s.", "Knudsen A/S", "Vos NV".
const LEGAL_FORM_AFTER = /^,?\s(?:a\.s\.|s\.r\.o\.|spol\. s r\.o\.|[Ss]p\. z o\.o\.|d\.o\.o\.|d\.d\.|S\.A\.|s\.a\.|S\.L\.|e\.K\.|e\.V\.|GmbH(?: & Co\. KG)?|AG|KG|SE|Ltda\.?|S\.R\.L\.|SRL|SA|SAS|SARL|Oy|Oyj|AB|A\/S|ApS|AS|ASA|NV|BV|N\.V\.|B\.V\.|LLC|LLP|PLC|Inc\.?|Ltd\.?|Corp\.?|Pty(?: Ltd)?)(?![\p{L}\p{N}])/u;
// Firms named after partners: "Quinn, Hayes and Hayes", "Marchal et Pons", "Torphy and Sons", "Larkin - Buckridge".
const FIRM = new RegExp(
  `(?<![\\p{L}\\p{N}])(${CAP_WORD_SRC}(?:, ${CAP_WORD_SRC})*,? (?:and|&|und|et|y|e|en|og|och|a|és|i) ${CAP_WORD_SRC}|${CAP_WORD_SRC} - ${CAP_WORD_SRC})( (?:Sons|Söhne|Fils|Hijos|Filhos|Figli|Partners|Associates|Co\\.|Company|Asociados))?(?![\\p{L}\\p{N}])`,
  'gu',
);
const ORG_PREFIX = /^(?:University|Bank|Banco|Banque|Institute|Ministry|Department|Hospital|Clinic|Museum|Universidad|Universität|Université|Università|Hôpital|Klinikum|Stadtwerke|Grupo|Groupe|Gruppo)$/;

const STREET_SUFFIX =
  'Street|St\\.?|Road|Rd\\.?|Avenue|Ave\\.?|Av\\.?|Boulevard|Blvd\\.?|Lane|Ln\\.?|Drive|Dr\\.?|Way|Court|Ct\\.?|Place|Pl\\.?|Square|Sq\\.?|Terrace|Close|Crescent|Parkway|Pkwy|Highway|Hwy|Circle|Cir\\.?|Row|Walk|Gardens|Grove|Mews|Trail|Loop|Alley|Plaza|Pike|Heights|Hill|Park|View|Ridge|Point|Crossing|Wharf|Quay';
const CAP = "\\p{Lu}[\\p{Ll}\\p{M}'’]+(?:-\\p{Lu}?[\\p{Ll}\\p{M}'’]+)*";
const CAP_OR_NUM = `(?:${CAP}|\\d{1,3}(?:st|nd|rd|th))`;
const UNIT = "(?:,?\\s*(?:Apt\\.?|Apartment|Suite|Ste\\.?|Unit|Flat|Floor|Fl\\.?|Room|#)\\s*[\\w-]{1,6})?";
// "221B Baker Street", "1600 Pennsylvania Avenue NW", "12 N. Main St., Apt 4"
const EN_STREET = new RegExp(
  `(?<![\\p{L}\\p{N}])\\d{1,6}[A-Za-z]?(?:[-/]\\d{1,4}[A-Za-z]?)?\\s+(?:[NSEW]\\.?\\s+)?(?:${CAP_OR_NUM}\\s+){0,4}(?:${STREET_SUFFIX})(?![\\p{L}])(?:\\s+(?:NE|NW|SE|SW|N|S|E|W)\\b)?${UNIT}`,
  'gu',
);
// "Hauptstraße 12a", "Kerkstraat 5", "Storgatan 3", "Mannerheimintie 10", "Długa 5" after "ul."
const COMPOUND_STREET = new RegExp(
  `(?<![\\p{L}\\p{N}])(?:${CAP}[ -])?\\p{Lu}[\\p{Ll}\\p{M}]*(?:straße|strasse|str\\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee|steig|pfad|markt|laan|straat|gracht|plein|kade|singel|dreef|vej|gade|gatan|vägen|gränd|veien|vegen|gata|gate|gaten|stræde|stien|katu|tie|kuja|polku|utca|út|tér|ulice|náměstí|třída|ulica|cesta|trg|sokak|caddesi)\\s+\\d{1,4}[a-zA-Z]?(?:[-/]\\d{1,4}[a-zA-Z]?)?`,
  'gu',
);
// "12 rue de la Paix", "5 bis, avenue Victor Hugo", "Calle Mayor 5", "Via Roma 10", "ul. Długa 5", "Rua Augusta, 120"
const ROMANCE_STREET = new RegExp(
  `(?<![\\p{L}\\p{N}])(?:\\d{1,4}(?:\\s?(?:bis|ter))?,?\\s+(?:rue|avenue|boulevard|bd|place|chemin|allée|impasse|quai|cours|route|square)\\s+(?:(?:de|du|des|la|le|l'|d')\\s*)*(?:${CAP}\\s?){1,4}` +
    `|(?:Calle|C\\/|Avenida|Avda\\.?|Av\\.|Plaza|Paseo|Carrer|Camino|Ronda|Travesía|Rua|Avenida|Praça|Travessa|Via|Viale|Piazza|Corso|Largo|Vicolo|ul\\.|ulica|al\\.|Aleja|Plac|Ulica|náměstí|Rue|Avenue|Boulevard|Chemin|Place|Strada|Str\\.|Bulevardul|Intrarea|Aleea|Calea|Piața|Șoseaua|Splaiul|Na|Pod|Nad|Za|U|V|Im|Am|An der|Auf der|Zum|Zur|In der|Ulica|Trg|Cesta)\\s+(?:(?:de|del|de la|da|do|dos|das|della|delle|dei|di|du|des)\\s+)*(?:${CAP}\\s?){1,4},?\\s*(?:n\\.?[ºo°]?\\s*)?\\d{1,4}[a-zA-Z]?(?:[-/]\\d{1,4})?)`,
  'gu',
);
// What may follow a street on the same line: ", London NW1 6XE", ", 75002 Paris", ", Springfield, IL 62704, USA"
const POSTCODE =
  '(?:\\d{5}(?:-\\d{4})?|\\d{2}-\\d{3}|\\d{3} ?\\d{2}|\\d{4}(?: ?[A-Z]{2})?|[A-Z]{1,2}\\d[A-Z\\d]? ?\\d[A-Z]{2}|[A-Z]\\d[A-Z] ?\\d[A-Z]\\d|\\d{3}-\\d{4}|\\d{6})';
const ADDRESS_TAIL = new RegExp(
  `^(?:,?\\s{1,2}(?:${POSTCODE}(?:\\s+(?:${CAP}\\s?){1,3})?|(?:${CAP}[ -]?){1,3}(?:\\s+${POSTCODE})?|[A-Z]{2}(?:\\s+${POSTCODE})?|${CAP}\\s+\\p{Lu}{2}\\s+${POSTCODE}))`,
  'u',
);
// "10115 Berlin", "75002 Paris", "SW1A 1AA": a postcode with a place, on its own or after a street.
const POSTCODE_CITY = new RegExp(`(?<![\\p{L}\\p{N}.,-])(?:\\d{5}|\\d{2}-\\d{3}|\\d{3} \\d{2}|\\d{4})\\s+(${CAP}(?:[ -]${CAP}){0,2})`, 'gu');

const LABEL_LINE =
  /(?:^|[\n|;]|\s{2,})[ \t]*(?:\*\*)?([A-Za-zÀ-ž][A-Za-zÀ-ž .'/-]{1,40}?)(?:\*\*)?[ \t]*[:=][ \t]*(?:\*\*)?([^\n|;]{1,160})/g;
const PERSON_LABELS =
  /^(?:(?:customer|client|patient|employee|applicant|candidate|contact|account|card ?holder|cardholder|account ?holder|beneficiary|recipient|sender|guest|passenger|tenant|member|user|full|first|last|given|family|legal|maiden|display|middle|emergency contact|next of kin|parent|guardian|spouse|manager|supervisor|approved|signed|requested|reported|assigned|prepared|reviewed|author|owner|signatory|witness|doctor|physician|gp|nurse|lawyer|attorney|agent|representative|rep|driver|buyer|seller|payer|payee|insured|policy ?holder|student|teacher)\s*(?:name|by|to)?|name|full name|surname|first name|last name|given name|family name|attn|attention|from|to|cc|bcc|contact person|signed by|nom|prénom|nombre|apellidos?|vorname|nachname|name des|nome|cognome|jméno|příjmení|imię|nazwisko|naam|voornaam|achternaam|navn|namn|nimi)$/i;
const ORG_LABELS =
  /^(?:company|company name|organi[sz]ation|organi[sz]ation name|employer|current employer|previous employer|firm|business|business name|vendor|supplier|merchant|bank|bank name|insurer|carrier|school|university|institution|agency|department|client company|customer company|entreprise|société|empresa|firma|unternehmen|arbeitgeber|azienda|società|společnost|zaměstnavatel|pracodawca|bedrijf|werkgever)$/i;
const PLACE_LABELS =
  /^(?:(?:billing|shipping|delivery|home|postal|mailing|street|work|office|business|residential|permanent|current|previous|correspondence|registered|invoice|return|pickup|pick-up|destination)?\s*address(?:\s*line\s*\d)?|street|city|town|village|county|state|province|region|country|country of (?:birth|residence)|place of birth|birthplace|residence|location|postcode|post code|postal code|zip|zip code|destination|origin|adresse|adresse de facturation|ville|pays|dirección|direccion|ciudad|país|anschrift|adresse|stadt|ort|land|wohnort|indirizzo|città|paese|adresa|město|obec|země|adres|miasto|kraj|adres|woonplaats|plaats)$/i;
const POSTCODE_ONLY_LABEL = /^(?:postcode|post code|postal code|zip|zip code)$/i;

const SIGN_OFF =
  /^[ \t]*(?:(?:best|kind|warm|warmest|many)\s+)?(?:regards|wishes|thanks|thank you|cheers|sincerely|best|yours(?:\s+(?:truly|sincerely|faithfully))?|cordially|respectfully|all the best|talk soon|take care|mit freundlichen grüßen|viele grüße|beste grüße|liebe grüße|cordialement|bien à vous|salutations|saludos|atentamente|un saludo|cordiali saluti|distinti saluti|saluti|s pozdravem|pozdrawiam|z poważaniem|met vriendelijke groet|groeten|med vänlig hälsning|hälsningar|med venlig hilsen|ystävällisin terveisin|atenciosamente|abraços|obrigad[oa])[ \t]*[,.!]?[ \t]*$/gim;

const NAME_HEADER = /^(?:(?:full |first |last |given |family |customer |client |contact |employee |patient |account |card ?holder )?name|surname|customer|client|contact|employee|patient|cardholder|account holder|nom|nombre|vorname|nachname|jméno|příjmení|imię|nazwisko|naam)$/i;
const PLACE_HEADER = /^(?:(?:billing |shipping |home |street |postal )?address|street|city|town|country|state|region|province|county|location|postcode|post code|postal code|zip|zip code|ville|pays|ciudad|país|stadt|ort|land|città|paese|město|miasto|plaats)$/i;
const ORG_HEADER = /^(?:company|organi[sz]ation|employer|firm|vendor|supplier|merchant|bank|school|university|institution|entreprise|société|empresa|firma|unternehmen|azienda|společnost|bedrijf)$/i;
const CELL_DELIMITERS = [',', ';', '\t', '|'];

// A run of capitalised words on one line, with the particles of names ("van der", "de la", "bin") and initials.
const PARTICLE = "(?:van|von|de|der|den|del|della|di|da|du|dos|das|do|la|le|ten|ter|bin|binti|ibn|al|el|y|zu|af|av|mac|st\\.)";
const NAME_WORD = `(?:${CAP}|\\p{Lu}\\.|\\p{Lu}{2,}(?=\\s+${CAP}))`;
const CAP_RUN = new RegExp(
  `(?<![\\p{L}\\p{N}_@./#-])${NAME_WORD}(?:(?:[ \\t]+|[ \\t]*&[ \\t]*)(?:${PARTICLE}[ \\t]+)*${NAME_WORD})*(?![\\p{L}\\p{N}@]|\\.\\p{L})`,
  'gu',
);
const WORD_IN_RUN = new RegExp(`${CAP}|\\p{Lu}\\.|\\p{Lu}{2,}|&|${PARTICLE}`, 'gu');

const HAS_UPPER = /\p{Lu}/u;

function lower(word: string): string {
  return word.toLowerCase().replace(/[’]/g, "'");
}

/** An ordinary word by the lexicon: trimmed off the ends of a capitalised run ("Thanks", "Report"). */
function isCommon(word: string): boolean {
  const w = lower(word);
  return (EXTRA_COMMON.has(w) || LEXICON_COMMON.has(w)) && !GIVEN.has(w) && !SURNAMES.has(w) && !PLACES.has(w);
}

/**
 * Any English word, by the large list: such a word is no evidence of a name on its own ("Practical Rubber Gloves"),
 * though many surnames are words too ("Swift", "Glover"), so it never vetoes other evidence.
 */
function isEnglish(word: string): boolean {
  return isCommon(word) || common().has(lower(word));
}

let countryNames: ReadonlySet<string> | undefined;
/** Country and region names in the languages of the locales CDSA is used in, from the runtime's own ICU data. */
function isCountryName(name: string): boolean {
  if (countryNames === undefined) {
    const names = new Set<string>();
    const languages = ['en', 'de', 'fr', 'es', 'it', 'pt', 'nl', 'pl', 'cs', 'sk', 'sv', 'da', 'nb', 'fi', 'hr', 'ro', 'hu', 'sl', 'tr'];
    const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    const codes: string[] = [];
    for (const a of letters) for (const b of letters) codes.push(a + b);
    for (const lang of languages) {
      const display = new Intl.DisplayNames([lang], { type: 'region', fallback: 'none' });
      for (const code of codes) {
        let value: string | undefined;
        try {
          value = display.of(code);
        } catch {
          value = undefined;
        }
        if (value !== undefined && value !== code) names.add(lower(value));
      }
    }
    countryNames = names;
  }
  return countryNames.has(lower(name));
}

function lineStart(text: string, pos: number): number {
  let i = pos - 1;
  while (i >= 0 && pos - i < 200 && text.charCodeAt(i) !== 10) i--;
  return i + 1;
}

/** Whether pos starts a sentence (or a line), where any word is capitalised. */
const sentenceStartAt = (text: string, pos: number): boolean => atSentenceStart(text, pos);

function atSentenceStart(text: string, pos: number): boolean {
  let i = pos - 1;
  while (i >= 0 && (text[i] === ' ' || text[i] === '\t' || text[i] === '"' || text[i] === '“' || text[i] === '(' || text[i] === '*')) i--;
  if (i < 0) return true;
  const c = text[i];
  return c === '\n' || c === '.' || c === '!' || c === '?' || c === ':' || c === '>' || c === '-' || c === '•';
}

interface Token {
  text: string;
  start: number;
  end: number;
}

function tokensOf(run: string, offset: number): Token[] {
  WORD_IN_RUN.lastIndex = 0;
  const out: Token[] = [];
  let m: RegExpExecArray | null;
  while ((m = WORD_IN_RUN.exec(run)) !== null) out.push({ text: m[0], start: offset + m.index, end: offset + m.index + m[0].length });
  return out;
}

const isParticle = (t: string): boolean => /^(?:van|von|de|der|den|del|della|di|da|du|dos|das|do|la|le|ten|ter|bin|binti|ibn|al|el|y|zu|af|av|mac|st\.|&)$/.test(t);
const isInitial = (t: string): boolean => /^\p{Lu}\.$/u.test(t);

function classifyRun(text: string, tokens: Token[], out: EntitySpan[]): void {
  // Leading and trailing ordinary words ("Thanks", "Please", "Report") are context, not part of a name.
  let s = 0;
  let e = tokens.length - 1;
  // After "my name is" or a title the first word is a name even if it is a word too ("Jan", "Will").
  const introduced = tokens.length > 1 && (PERSON_INTRO.test(text.slice(lineStart(text, tokens[0].start), tokens[0].start)) || HONORIFIC.test(text.slice(lineStart(text, tokens[0].start), tokens[0].start)));
  while (!introduced && s <= e && (isParticle(tokens[s].text) || (isCommon(tokens[s].text) && !ORG_PREFIX.test(tokens[s].text)))) s++;
  while (e >= s && (isParticle(tokens[e].text) || (isCommon(tokens[e].text) && !ORG_SUFFIX.test(tokens[e].text.replace(/\.$/, ''))))) e--;
  if (s > e) return;
  const words = tokens.slice(s, e + 1);
  const start = words[0].start;
  let end = words[words.length - 1].end;
  const before = text.slice(lineStart(text, start), start);
  const lowers = words.map((w) => lower(w.text));
  const last = words[words.length - 1].text.replace(/\.$/, '');
  const allCaps = words.every((w) => /^\p{Lu}{2,}$/u.test(w.text));
  const push = (type: EntityType, strength: number): void => {
    if (type === 'PERSON' && /\.$/.test(text.slice(start, end)) && !isInitial(words[words.length - 1].text)) end -= 1;
    out.push({ type, start, end, strength });
  };

  // Organisations: a company suffix or prefix, or a known organisation.
  if ((words.length >= 2 && ORG_SUFFIX.test(last)) || (words.length >= 2 && ORG_PREFIX.test(words[0].text))) {
    // "Acme Corp.": the abbreviation's dot belongs to the name.
    if (text[end] === '.' && /^(?:Inc|Ltd|Corp|Co|Bros|S\.A|S\.L|S\.p\.A|S\.r\.l|B\.V|N\.V|s\.r\.o|a\.s)$/.test(last)) end += 1;
    // "Sp. z o.o.", "spol. s r.o.": the rest of a Polish or Czech legal form.
    const rest = /^\.? (?:z o\.o\.|s r\.o\.)/.exec(text.slice(end, end + 12));
    if (rest && /^(?:Sp|spol)$/i.test(last)) end += rest[0].length;
    out.push({ type: 'ORGANIZATION', start, end, strength: 3 });
    return;
  }
  if (lowers.length <= 4 && ORGS.has(lowers.join(' '))) {
    out.push({ type: 'ORGANIZATION', start, end, strength: 2 });
    return;
  }
  if (allCaps) {
    if (ORG_BEFORE.test(before) && words.length <= 3) out.push({ type: 'ORGANIZATION', start, end, strength: 2 });
    return;
  }

  const honorific = HONORIFIC.test(before);
  const given = GIVEN.has(lowers[0]);
  const surname = SURNAMES.has(lowers[lowers.length - 1]);
  const joined = lowers.join(' ');
  const placeKnown = PLACES.has(joined) || isCountryName(joined);
  const unknown = words.filter((w) => !isEnglish(w.text)).length;

  if (honorific) return push('PERSON', 3);
  if (ORG_BEFORE.test(before) && !given) {
    out.push({ type: 'ORGANIZATION', start, end, strength: 2 });
    return;
  }
  if (placeKnown && !given) {
    push('LOCATION', STRONG_PLACE_BEFORE.test(before) ? 3 : 2);
    return;
  }
  if (STRONG_PLACE_BEFORE.test(before) && words.length <= 3) return push('LOCATION', 2);
  // "in Mulhouse, Belgique", "Kraków, Poland": a place followed by a country.
  const after = text.slice(end, end + 40);
  const nextCountry = /^,\s*(\p{Lu}[\p{L}\p{M} .'-]{2,30}?)(?=[\s.,;·|)]|$)/u.exec(after);
  if (nextCountry && isCountryName(nextCountry[1]) && !given) return push('LOCATION', 2);
  if (/\b(?:in|near|from)\s+$/.test(before) && !given && unknown === words.length && words.length <= 3 && !sentenceStartAt(text, start)) {
    return push('LOCATION', 1);
  }
  const sentenceStart = atSentenceStart(text, start);
  if (words.length >= 2) {
    if (given || surname) return push('PERSON', 2);
    if (PERSON_BEFORE.test(before)) return push('PERSON', 2);
    // Two or more capitalised words that are no ordinary English word: most often a name in another language.
    if (unknown === words.length && words.length <= 4 && !words.some((w) => isInitial(w.text) && words.length === 2)) return push('PERSON', 1);
    if (PLACE_BEFORE.test(before) && words.some((w) => PLACES.has(lower(w.text)))) return push('LOCATION', 1);
    return;
  }
  // One capitalised word: a name only with evidence, never at the start of a sentence on its own.
  const w = lowers[0];
  if (given && (!sentenceStart || PERSON_BEFORE.test(before)) && !LEXICON_COMMON.has(w)) return push('PERSON', 1);
  if (PERSON_BEFORE.test(before) && /\b(?:my name is|i am|i'm|call me|named|called|dear|hi|hello|hey|signed|regards|thanks|thank you)\s*[:,]?\s*$/i.test(before) && unknown === 1) {
    return push('PERSON', 1);
  }
  if (surname && !sentenceStart && !LEXICON_COMMON.has(w) && /\b(?:with|from|by|ask|told|said|and)\s+$/i.test(before)) return push('PERSON', 1);
  if (PLACE_BEFORE.test(before) && unknown === 1 && !sentenceStart && /\b(?:in|from|to|near|at)\s+$/i.test(before) && PLACES.has(w)) {
    return push('LOCATION', 1);
  }
}

function detectCapitalisedRuns(text: string, out: EntitySpan[]): void {
  CAP_RUN.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = CAP_RUN.exec(text)) !== null) {
    const end = m.index + m[0].length;
    const legal = LEGAL_FORM_AFTER.exec(text.slice(end, end + 24));
    if (legal && !m[0].split(/\s+/).every((w) => isCommon(w))) {
      out.push({ type: 'ORGANIZATION', start: m.index, end: end + legal[0].length, strength: 3 });
      continue;
    }
    const tokens = tokensOf(m[0], m.index);
    if (tokens.length > 0) classifyRun(text, tokens, out);
  }
}

function detectFirms(text: string, out: EntitySpan[]): void {
  FIRM.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = FIRM.exec(text)) !== null) {
    const names = m[1].split(/,? (?:and|&|und|et|y|e|en|og|och|a|és|i|-) |, /);
    if (names.some((n) => isCountryName(n))) continue;
    const suffix = m[2] !== undefined;
    if (names.some((n) => isCommon(n) || PLACES.has(lower(n)))) continue;
    // "Anna and Peter" are two people; partners' surnames, three names or a "& Sons" are a firm.
    if (!suffix && names.length < 3 && names.some((n) => GIVEN.has(lower(n.split('-')[0])))) continue;
    out.push({ type: 'ORGANIZATION', start: m.index, end: m.index + m[0].length, strength: suffix || names.length >= 3 ? 3 : 2 });
  }
}

/** Extends a street match over the postcode, city, state and country that follow it on the same line. */
function extendAddress(text: string, end: number): number {
  let pos = end;
  for (let parts = 0; parts < 4; parts++) {
    const rest = text.slice(pos, pos + 60);
    const m = ADDRESS_TAIL.exec(rest);
    if (!m || m[0].length === 0) break;
    const piece = m[0].replace(/^,?\s+/, '');
    const firstWord = piece.split(/[\s-]/)[0];
    // A following sentence word ("… Street, please call") ends the address.
    if (/^\p{Lu}/u.test(piece) && isCommon(firstWord) && !PLACES.has(lower(firstWord))) break;
    if (!m[0].startsWith(',') && !/^\s+(?:\d|[A-Z]{1,2}\d)/.test(m[0]) && !PLACES.has(lower(piece.trim()))) break;
    pos += m[0].replace(/\s+$/, '').length;
  }
  return pos;
}

function detectAddresses(text: string, out: EntitySpan[]): void {
  for (const re of [EN_STREET, COMPOUND_STREET, ROMANCE_STREET]) {
    re.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) {
      const raw = m[0].replace(/[\s,]+$/, '');
      out.push({ type: 'LOCATION', start: m.index, end: extendAddress(text, m.index + raw.length), strength: 3 });
    }
  }
  POSTCODE_CITY.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = POSTCODE_CITY.exec(text)) !== null) {
    const city = m[1];
    const prev = text.slice(Math.max(0, m.index - 2), m.index);
    if (PLACES.has(lower(city)) || /,\s?$/.test(prev) || !city.split(/[ -]/).some((w) => isCommon(w))) {
      out.push({ type: 'LOCATION', start: m.index, end: extendAddress(text, m.index + m[0].length), strength: 2 });
    }
  }
}

/** "Name: Jane Doe", "Billing address: 1 Main St, Springfield", "Company: Acme": the value after a form label. */
function detectLabelled(text: string, out: EntitySpan[]): void {
  LABEL_LINE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = LABEL_LINE.exec(text)) !== null) {
    const label = m[1].trim().replace(/\s+/g, ' ');
    const type: EntityType | null = PERSON_LABELS.test(label) ? 'PERSON' : ORG_LABELS.test(label) ? 'ORGANIZATION' : PLACE_LABELS.test(label) ? 'LOCATION' : null;
    if (type === null) continue;
    const valueStart = m.index + m[0].length - m[2].length;
    let value = m[2];
    // A person's or organisation's value ends at an e-mail, a bracket or a comma; an address runs to the line's end.
    if (type !== 'LOCATION') value = value.split(/\s*(?:[,(<[]|\s-\s|\s{2,}|\.\s|$)/)[0];
    else value = value.split(/\s{3,}|\.\s+\p{Lu}/u)[0];
    value = value.replace(/[\s.,*]+$/, '');
    if (value.length < 2 || !HAS_UPPER.test(value[0]) && !/^\d/.test(value)) continue;
    if (type === 'PERSON') {
      // "From: support" or "To: all" is no person; neither is an address.
      if (!/^\p{Lu}/u.test(value) || value.includes('@') || value.split(/\s+/).length > 5) continue;
      if (value.split(/\s+/).every((w) => isCommon(w))) continue;
    }
    if (type === 'LOCATION' && POSTCODE_ONLY_LABEL.test(label) && !/^[\dA-Z][\dA-Z -]{2,9}$/.test(value)) continue;
    out.push({ type, start: valueStart, end: valueStart + value.length, strength: 4 });
  }
}

/** The name under a sign-off ("Best regards,\nJane Doe"). */
function detectSignatures(text: string, out: EntitySpan[]): void {
  SIGN_OFF.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = SIGN_OFF.exec(text)) !== null) {
    let pos = m.index + m[0].length;
    while (pos < text.length && (text[pos] === '\n' || text[pos] === '\r' || text[pos] === ' ')) pos++;
    const lineEnd = text.indexOf('\n', pos);
    const line = text.slice(pos, lineEnd === -1 ? text.length : lineEnd);
    const name = /^(?:[-–—]\s*)?(\p{Lu}[\p{L}\p{M}'’.-]*(?:\s+(?:\p{Lu}[\p{L}\p{M}'’.-]*|van|von|de|der|da|di|du|la|le)){0,3})\s*,?\s*$/u.exec(line.split(/\s+[|–—-]\s+|,\s+/)[0]);
    if (!name) continue;
    const words = name[1].split(/\s+/);
    if (words.every((w) => isCommon(w))) continue;
    const start = pos + line.indexOf(name[1]);
    out.push({ type: 'PERSON', start, end: start + name[1].length, strength: 3 });
  }
}

function splitCells(row: string, delim: string): Array<[number, number]> {
  const cells: Array<[number, number]> = [];
  let s = 0;
  for (let i = 0; i <= row.length; i++) {
    if (i === row.length || row[i] === delim) {
      cells.push([s, i]);
      s = i + 1;
    }
  }
  return cells;
}

/** CSV, TSV and Markdown tables: the cells under a "Name", "City" or "Company" header. */
function detectTables(text: string, out: EntitySpan[]): void {
  if (text.indexOf('\n') === -1) return;
  const lines = text.split('\n');
  let offset = 0;
  let header: { delim: string; types: Array<EntityType | null>; count: number } | null = null;
  for (const line of lines) {
    const lineOffset = offset;
    offset += line.length + 1;
    if (header !== null) {
      const cells = splitCells(line, header.delim);
      if (cells.length < 2 || Math.abs(cells.length - header.count) > 1) {
        header = null;
      } else {
        if (/^[\s|:-]+$/.test(line)) continue;
        cells.forEach(([s, e], k) => {
          const type = header!.types[k];
          if (!type) return;
          let cs = s;
          let ce = e;
          while (cs < ce && /[\s"']/.test(line[cs])) cs++;
          while (ce > cs && /[\s"']/.test(line[ce - 1])) ce--;
          if (ce - cs >= 2 && /[\p{L}\d]/u.test(line[cs])) out.push({ type, start: lineOffset + cs, end: lineOffset + ce, strength: 4 });
        });
        continue;
      }
    }
    for (const delim of CELL_DELIMITERS) {
      if (!line.includes(delim)) continue;
      const cells = splitCells(line, delim).map(([s, e]) => line.slice(s, e).trim().replace(/^["']|["']$/g, '').replace(/[_-]/g, ' '));
      const types = cells.map((c): EntityType | null => (NAME_HEADER.test(c) ? 'PERSON' : PLACE_HEADER.test(c) ? 'LOCATION' : ORG_HEADER.test(c) ? 'ORGANIZATION' : null));
      if (types.some((t) => t !== null) && cells.length >= 2) {
        header = { delim, types, count: cells.length };
        break;
      }
    }
  }
}

/** Keeps the strongest of overlapping spans (the longest among equals). */
function resolveSpans(spans: EntitySpan[]): EntitySpan[] {
  spans.sort((a, b) => b.strength - a.strength || b.end - b.start - (a.end - a.start) || a.start - b.start);
  const kept: EntitySpan[] = [];
  for (const s of spans) {
    if (kept.some((k) => k.start < s.end && s.start < k.end)) continue;
    kept.push(s);
  }
  return kept.sort((a, b) => a.start - b.start);
}

/**
 * Reads the word list and builds the country names now (about 100 ms, once per process) instead of in the first
 * detection, whose time budget it would spend.
 */
export function loadEntityData(): void {
  common();
  isCountryName('');
}

/** People, places (addresses included) and organisations in `text`, non-overlapping, sorted by offset. */
export function detectEntities(text: string): EntitySpan[] {
  // Everything below starts at a capital letter or a digit-led street; a text without capitals has none of them.
  if (!HAS_UPPER.test(text)) return [];
  const spans: EntitySpan[] = [];
  detectLabelled(text, spans);
  detectTables(text, spans);
  detectSignatures(text, spans);
  detectAddresses(text, spans);
  detectFirms(text, spans);
  detectCapitalisedRuns(text, spans);
  return resolveSpans(spans);
}

/** The surname of a person's name, for matching "Ms. Ottová" to an earlier "Šárka Ottová". */
export function surnameOf(name: string): string | null {
  const words = name.trim().split(/\s+/);
  if (words.length < 2) return null;
  return lower(words[words.length - 1]);
}
