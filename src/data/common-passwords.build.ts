/**
 * Regenerates src/data/common-passwords.txt: `npx tsx src/data/common-passwords.build.ts`.
 *
 * The list is generated, not copied: seed words that are among the most frequent entries of public, breach-derived
 * password lists (RockYou, the UK NCSC "100k most common", SecLists' top lists), written down by hand, combined with
 * the decorations people add to them (years, digit runs, `!`, doubling, leetspeak) plus keyboard walks and digit
 * patterns. Matching is case-insensitive, so every entry is lower case. Deterministic: same input, same file.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SEED_WORDS = `
password passw0rd p@ssword p@ssw0rd pass passwd letmein welcome welcome1 admin administrator root toor login
qwerty qwertyuiop asdf asdfgh asdfghjkl zxcvbn zxcvbnm azerty qwertz iloveyou ihateyou loveyou lovely love
monkey dragon master shadow sunshine princess football baseball soccer hockey basketball superman batman spiderman
trustno1 freedom whatever starwars computer michael jennifer jordan hunter ranger buster thomas robert daniel
charlie andrew matthew joshua jessica ashley amanda michelle nicole daniela samantha hannah jasmine maggie
pepper ginger cookie chocolate cheese banana orange apple cherry peanut butter summer winter autumn spring
flower flowers angel angels baby babygirl babyboy princesa tigger tiger lion eagle falcon killer killer1
hello hello1 hellokitty secret secret1 access access1 letmein1 changeme changeit default guest test tester
testing test123 demo user username internet mustang harley corvette ferrari porsche mercedes yamaha
pokemon naruto minecraft fortnite roblox warcraft starcraft matrix zelda mario nintendo playstation xbox
liverpool chelsea arsenal barcelona realmadrid juventus manchester united england scotland ireland london
america canada mexico brazil germany france paris berlin newyork chicago dallas boston miami toronto
jesus jesus1 christ god godisgood blessed faith heaven angel1 lucky lucky7 lucky13 money money1 cash
rockyou rockstar rocknroll metallica nirvana slipknot eminem beatles music guitar piano dancer
family friends friend forever together mylove myspace facebook google yahoo hotmail gmail linkedin
iloveu iloveyou1 loveme lovelove sweet sweetie sweetheart honey sugar candy beautiful pretty gorgeous
daniel1 michael1 charlie1 jordan23 michael23 lebron kobe24 messi ronaldo cr7 neymar
whatever1 nothing blahblah asdfasdf qwerqwer zaq12wsx zaq1zaq1 1qaz2wsx 1q2w3e4r qazwsx qwe123 abc123
abcdef abcdefg abcdefgh abcd1234 a1b2c3 a1b2c3d4 aaaaaa aaa111 asd123 zxc123 qwe asd zxc
pass123 pass1234 admin123 admin1234 root123 master123 welcome123 login123 user123 guest123 test1234
security secure private confidential company office work business manager support service system server
database oracle mysql postgres redis linux windows microsoft apple macbook iphone android samsung huawei
dragon1 monkey1 shadow1 sunshine1 princess1 football1 baseball1 superman1 batman1 master1 hunter2
summer2020 winter2020 spring2020 autumn2020 fall2020 january february march april june july august
september october november december monday tuesday wednesday thursday friday saturday sunday
qwerty123 qwerty1 password1 password12 password123 iloveyou2 trustme letmeinplease opensesame
starwars1 jedi yoda vader skywalker gandalf frodo hobbit harrypotter hogwarts hermione dumbledore
chicken pizza burger coffee beer whiskey vodka tequila bacon pumpkin snoopy garfield scooby
dolphin turtle rabbit kitten kitty puppy doggy horse pony unicorn panda bear wolf fox
password! welcome! admin! qwerty! monkey! dragon! shadow! master! letmein! iloveyou!
ncc1701 thx1138 zxcvbnm1 asdfghjk qwertyui 1qazxsw2 xsw2zaq1 2wsx3edc 3edc4rfv
`;

const DIGIT_SUFFIXES = ['1', '12', '123', '1234', '12345', '123456', '1234567', '12345678', '123456789', '0', '01', '007', '11', '13', '23', '69', '99', '111', '666', '777'];
const SYMBOL_SUFFIXES = ['!', '!!', '!!!', '?', '.', '@', '#', '*', '!@#', '@123'];
const DECORATED_DIGITS = ['', '1', '12', '123', '1234', '12345'];
const DECORATED_SYMBOLS = ['!', '!!', '@', '#', '!@#', '.'];
const YEARS = Array.from({ length: 2030 - 1970 + 1 }, (_, i) => String(1970 + i));
const RECENT_YEARS = YEARS.filter((year) => Number(year) >= 2010);
const KEYBOARD_WALKS = [
  'qwertyuiop', 'qwertyuiopasdfghjkl', 'asdfghjkl', 'asdfghjkl;', 'zxcvbnm', 'zxcvbnm,./', 'qwertyasdfgh', 'qwertyasdfghzxcvbn',
  '1qaz2wsx3edc', '1qaz2wsx3edc4rfv', '1q2w3e4r5t', '1q2w3e4r5t6y', '1q2w3e4r5t6y7u8i', 'q1w2e3r4t5y6', 'qazwsxedc', 'qazwsxedcrfv',
  'zaq12wsxcde3', '!qaz2wsx', '!qaz@wsx', '1qaz!qaz', 'qweasdzxc', 'qweasdzxc123', 'poiuytrewq', 'lkjhgfdsa', 'mnbvcxz',
  '123qweasdzxc', 'qwe123asd', 'asdqwe123', 'azertyuiop', 'qwertzuiop', 'wasdwasd', 'abcdefghijkl', 'abcdefghijklmnop',
];

const digitPatterns = (): string[] => {
  const out: string[] = [];
  for (let length = 6; length <= 16; length += 1) {
    out.push('1234567890'.repeat(2).slice(0, length));
    out.push('0987654321'.repeat(2).slice(0, length));
    out.push('9876543210'.repeat(2).slice(0, length));
    for (let digit = 0; digit <= 9; digit += 1) out.push(String(digit).repeat(length));
    for (const letter of 'abcdefghijklmnopqrstuvwxyz') out.push(letter.repeat(length));
  }
  for (const pair of ['12', '123', '1234', '12345', '123456', '147', '159', '2580', '0000', '1212', '6969', 'abc', 'qwe', 'ab12']) {
    for (let times = 2; times <= 6; times += 1) out.push(pair.repeat(times));
  }
  return out;
};

const LEET: Record<string, string> = { a: '@', e: '3', i: '1', o: '0', s: '$' };
const leet = (word: string): string => word.replace(/[aeios]/g, (char) => LEET[char] ?? char);

function build(): string[] {
  const words = [...new Set(SEED_WORDS.split(/\s+/).filter(Boolean).map((word) => word.toLowerCase()))];
  const set = new Set<string>();
  const add = (value: string) => {
    if (value.length >= 6 && value.length <= 64) set.add(value.toLowerCase());
  };
  for (const word of words) {
    for (const base of new Set([word, leet(word)])) {
      add(base);
      for (const digits of DIGIT_SUFFIXES) add(`${base}${digits}`);
      for (const symbol of SYMBOL_SUFFIXES) add(`${base}${symbol}`);
      // Leetspeak variants take the plain suffixes only; the full set of decorations is for the word itself.
      if (base !== word) continue;
      for (const digits of DECORATED_DIGITS) for (const symbol of DECORATED_SYMBOLS) add(`${base}${digits}${symbol}`);
      for (const year of YEARS) add(`${base}${year}`);
      for (const year of RECENT_YEARS) {
        add(`${base}${year}!`);
        add(`${base}@${year}`);
      }
      add(`${base}${base}`);
      add(`${base}${base}1`);
      add(`${base}${base}123`);
      add(`my${base}`);
      add(`my${base}123`);
      add(`i love ${base}`);
      add(`ilove${base}`);
      add(`ilove${base}123`);
      add(`1${base}`);
      add(`123${base}`);
      add(`${base}_${base}`);
    }
  }
  for (const walk of KEYBOARD_WALKS) {
    add(walk);
    for (const digits of DIGIT_SUFFIXES.slice(0, 9)) add(`${walk}${digits}`);
    for (const digits of DECORATED_DIGITS) for (const symbol of DECORATED_SYMBOLS) add(`${walk}${digits}${symbol}`);
  }
  for (const pattern of digitPatterns()) add(pattern);
  for (const phrase of [
    'correcthorsebatterystaple', 'correct horse battery staple', 'thequickbrownfox', 'thequickbrownfoxjumpsoverthelazydog',
    'iloveyoumorethananything', 'letmeinletmein', 'passwordpassword', 'changemechangeme', 'mypasswordis', 'thisismypassword',
    'whatisthepassword', 'idontknow', 'idontknowmypassword', 'nopassword', 'password is', 'youshallnotpass', 'maytheforcebewithyou',
    'tobeornottobe', 'onetwothreefour', 'abcdefghijklmnopqrstuvwxyz', 'qwertyuiopasdfghjklzxcvbnm', 'trustnoone', 'iamtheone',
  ]) {
    for (const symbol of ['', '1', '123', '!', '1!', '123!']) add(`${phrase}${symbol}`);
  }
  return [...set].sort();
}

const header = `# Common passwords, lower case, one a line (matched case-insensitively).
# Generated by src/data/common-passwords.build.ts from seed words that are among the most frequent entries of public,
# breach-derived password lists (RockYou, the UK NCSC 100k list, SecLists), written down by hand rather than copied,
# combined with common decorations (digit runs, years 1970-2030, symbols, doubling, leetspeak), keyboard walks and
# digit/letter repetitions. Regenerate with: npx tsx src/data/common-passwords.build.ts
`;

const entries = build();
const target = path.join(path.dirname(fileURLToPath(import.meta.url)), 'common-passwords.txt');
writeFileSync(target, `${header}${entries.join('\n')}\n`);
process.stdout.write(`${entries.length} entries written to ${target}\n`);
