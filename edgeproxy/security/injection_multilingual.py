"""The prompt-injection rules for languages other than English.

Each rule is built from a table of alternatives, one or a few per language, each with the
anchors that every one of its matches contains (see `RuleSpec`), so that a language's pattern
and its anchors stay side by side. The patterns read the folded view of `unmask`: case-folded,
accents taken off Latin letters ("instrucciónes" reads "instrucciones", "glöm" reads "glom",
"talimatlari" written with a dotless i keeps it), Arabic and Hebrew vowel marks dropped, zero-width
joiners gone. Where a language puts the verb after its object (Persian, Urdu, Hindi, Bengali,
Japanese, Korean, Turkish) the object comes first. Non-Latin scripts have no `\\b` to rely on
between words, so their alternatives use bounded gaps of any characters within a sentence.

What they cover, in about 35 languages: setting aside earlier instructions, "forget everything
you were told", the system prompt or hidden instructions, requests to show or tell, answers
without restrictions or censorship, a persona for the model ("from now on you are an AI
that..."), "never refuse", notes addressed to an AI assistant inside documents, and data sent
to an address.
"""

from __future__ import annotations

from typing import Final

from edgeproxy.security.injection_spec import RuleSpec

_Alternative = tuple[str, tuple[str, ...]]


def _rule(rule_id: str, weight: float, alternatives: list[_Alternative]) -> RuleSpec:
    """One rule from (pattern, anchors) alternatives."""
    pattern = "|".join(f"(?:{source})" for source, _ in alternatives)
    anchors = tuple(dict.fromkeys(anchor for _, group in alternatives for anchor in group))
    return RuleSpec(rule_id, weight, pattern, anchors)


def _pair(verbs: str, objects: str, gap: int = 4) -> str:
    """A verb, then its object within `gap` words."""
    return rf"\b(?:{verbs})\b(?:\s\S+){{0,{gap}}}?\s(?:{objects})"


def _near(first: str, then: str, chars: int = 40) -> str:
    """`first`, then `then` within `chars` characters of the same sentence (scripts without
    spaces between words, or with prefixes glued to words)."""
    return rf"(?:{first})[^.!?。!?।\n]{{0,{chars}}}?(?:{then})"


# fmt: off
_IGNORE_INSTRUCTIONS: list[_Alternative] = [
    # Spanish, Catalan, Portuguese
    (_pair(r"ignora|ignore|ignoren|ignorar|olvida|olvide|olviden|olvidate|descarta|omite"
           r"|desatiende|haz caso omiso (?:de|a)|no sigas|deja de seguir|oblida|desconsidere"
           r"|desconsidera|despreze|esqueca|esquece|pule|deixe de seguir|nao siga",
           r"instrucciones|instruccions|reglas|regles|indicaciones|directrices|normas|ordenes"
           r"|lo anterior|restricciones|pautas|instrucoes|regras|diretrizes|orientacoes"
           r"|comandos|restricoes"),
     ("ignor", "olvid", "descart", "omite", "desatiend", "caso omiso", "no sigas",
      "deja de seguir", "oblida", "desconsider", "desprez", "esquec", "pule", "deixe de",
      "nao siga")),
    # French: "ignore" is English too, so it counts only before a French article
    (r"\bignore[zr]?\s(?:toutes?\s)?(?:les|tes|vos|ces)\s(?:\S+\s){0,2}?(?:instructions"
     r"|consignes|regles|directives|indications)\b",
     ("ignore",)),
    (_pair(r"ignorez|oublie|oubliez|oublier|ne tiens pas compte|ne tenez pas compte"
           r"|fais abstraction|faites abstraction|neglige|negligez|passe outre",
           r"instructions|consignes|regles|directives|indications|ci-dessus|restrictions"),
     ("ignorez", "oubli", "ne tiens pas", "ne tenez pas", "abstraction", "neglig",
      "passe outre")),
    # German
    (_pair(r"ignorier\w*|vergiss|vergessen sie|missachte\w*|beachte nicht|uberspring\w*",
           r"anweisungen|regeln|instruktionen|vorgaben|richtlinien|befehle|systemprompt"
           r"|anweisung|einschrankungen"),
     ("ignorier", "vergiss", "vergessen", "missacht", "beachte nicht", "uberspring")),
    # Italian, Dutch
    (_pair(r"ignora|ignorare|dimentica|dimenticare|trascura|non seguire|non rispettare"
           r"|negeer|vergeet",
           r"istruzioni|regole|indicazioni|linee guida|direttive|restrizioni|instructies"
           r"|regels|richtlijnen|opdrachten|aanwijzingen|beperkingen"),
     ("ignora", "dimentic", "trascura", "non seguire", "non rispettare", "negeer", "vergeet")),
    # Polish, Czech, Slovak
    (_pair(r"zignoruj|ignoruj\w*|zapomnij|pomin|zapomen\w*|zabudni|nerespektuj|preskoc",
           r"instrukcj\w*|polecenia|zasady|reguły|reguly|wytyczne|ograniczenia|pokyn\w*"
           r"|instrukce|instrukcie|pravidla|smernice"),
     ("ignoruj", "zapomnij", "pomin", "zapomen", "zabudni", "nerespektuj", "preskoc")),
    # Swedish, Danish, Norwegian
    (_pair(r"ignorera|glom|ignorer|strunta i|bortse fra|se bort fra|glem",
           r"instruktioner\w*|regler\w*|instruksjoner\w*|anvisninger|retningslinjer"),
     ("ignor", "glom", "strunta", "bortse", "se bort", "glem")),
    # Indonesian and Malay, Vietnamese, Turkish
    (_pair(r"abaikan|lupakan|jangan ikuti|acuhkan|bo qua|quen|phot lo|khong tuan theo",
           r"instruksi|perintah|aturan|petunjuk|arahan|peraturan|huong dan|chi dan|quy tac"
           r"|chi thi|lenh|quy dinh"),
     ("abaikan", "lupakan", "jangan ikuti", "acuhkan", "bo qua", "quen", "phot lo",
      "khong tuan")),
    (r"\b(?:talimat|kural)\w*(?:\s\S+){0,3}?\s(?:gormezden gel|yok say|unut|dikkate alma"
     r"|umursama)",
     ("talimat", "kural")),
    # Romanian, Hungarian, Finnish
    (_pair(r"ignora|uita|nu respecta|nu mai urma|hagyd figyelmen kivul|felejtsd el"
           r"|ne vedd figyelembe|ignorald|unohda|ohita|sivuuta|jata huomiotta|ala noudata",
           r"instructiuni\w*|regulile|indicatiile|directivele|utasitas\w*|szabaly\w*"
           r"|iranyelv\w*|ohje\w*|saanno\w*|kasky\w*|rajoitu\w*"),
     ("ignora", "uita", "nu respecta", "nu mai urma", "figyelmen", "felejtsd",
      "ne vedd", "unohda", "ohita", "sivuuta", "huomiotta", "noudata")),
    # Swahili, Tagalog
    (_pair(r"puuza|sahau|usifuate|kalimutan|balewalain|huwag pansinin|wag pansinin"
           r"|huwag sundin",
           r"maagizo|maelekezo|sheria|amri|tagubilin|utos|patakaran|instruksyon|panuto"
           r"|tuntunin", gap=6),
     ("puuza", "sahau", "usifuate", "kalimutan", "balewalain", "pansinin", "sundin")),
    # Greek, Russian, Ukrainian
    (_near(r"αγν[οό]ησ|ξ[εέ]χασ|παρ[αά]βλεψ", r"οδηγ[ιί]|καν[οό]ν|εντολ[εέ]"),  # noqa: RUF001 (Greek, Cyrillic)
     ("αγν", "ξέχασ", "ξεχασ", "παράβλεψ", "παραβλεψ")),  # noqa: RUF001 (Greek, Cyrillic)
    (r"\b(?:игнорируй|игнорируйте|проигнорируй\w*|забудь|забудьте|не обращай внимания на"
     r"|не обращайте внимания на|пропусти|отбрось)\b(?:\s\S+){0,4}?\s(?:инструкци\w*"
     r"|указани\w*|правил\w*|директив\w*|команд\w*)"
     r"|\b(?:ігноруй\w*|забудь)\b(?:\s\S+){0,4}?\s(?:інструкці\w*|вказівк\w*|правил\w*)",
     ("игнор", "забуд", "не обращ", "пропусти", "отбрось", "ігнор")),
    # Hebrew, Arabic, Persian, Urdu
    (_near(r"התעלם|תתעלם|שכח|תשכח", r"הוראות|כללים|הנחיות|הוראה"),
     ("התעלם", "תתעלם", "שכח", "תשכח")),
    (_near(r"تجاهل|انس|إنس", r"التعليمات|تعليمات|الأوامر|القواعد|الإرشادات|التوجيهات"),
     ("تجاهل", "انس", "إنس")),
    (_near(r"دستورالعمل|دستورات|قوانین|قواعد|راهنمایی|ہدایات|احکامات",
           r"نادیده بگیر|فراموش کن|نظر انداز|بھول جا"),
     ("نادیده", "فراموش", "نظر انداز", "بھول")),
    # Hindi, Bengali, Thai
    (r"(?:निर्देश|नियम)\S*(?:\s\S+){0,4}?\s(?:अनदेखा|नजरअंदाज|भूल)",
     ("अनदेखा", "नजरअंदाज", "भूल")),
    (_near(r"নির্দেশ|নিয়ম", r"উপেক্ষা|ভুলে যাও|অগ্রাহ্য"), ("উপেক্ষা", "ভুলে", "অগ্রাহ্য")),
    (_near(r"เพิกเฉย|ไม่ต้องสนใจ|ลืม|ละเลย", r"คำสั่ง|กฎ|คำแนะนำ", chars=30),
     ("เพิกเฉย", "ไม่ต้องสนใจ", "ลืม", "ละเลย")),
    # Chinese, Japanese, Korean
    (r"(?:忽略|无视|無視|忽視|忽视|不要理会|不要遵守|忘记|忘記|放弃|跳过)[^。!?\n]{0,12}?"
     r"(?:指令|指示|说明|規則|规则|提示|要求|设定|設定|限制)"
     r"|(?:指示|命令|ルール|規則|設定|制約|プロンプト)[^。!?\n]{0,12}?(?:無視|忘れ)"
     r"|(?:지시|명령|규칙|지침|프롬프트|제한)[^.!?\n]{0,12}?(?:무시|잊)",
     ("忽略", "无视", "無視", "忽視", "忽视", "不要理会", "不要遵守", "忘记", "忘記", "放弃",
      "跳过", "忘れ", "무시", "잊")),
]

_FORGET_EVERYTHING: list[_Alternative] = [
    (r"\bolvida\w* todo (?:lo )?(?:anterior|que (?:te|se te) (?:dijeron|han dicho|indicaron))"
     r"|\besquec\w* tudo (?:o que )?(?:(?:te|lhe) (?:disseram|foi dito)|antes|anterior)"
     r"|\boubli\w* tout ce (?:qu'on t'a dit|qui precede|qu'on vous a dit)"
     r"|\bvergiss\w* alles,? (?:was (?:man )?dir|bisher|vorher|davor|zuvor)"
     r"|\bdimentica\w* tutto (?:cio che|quello che|quanto)"
     r"|\bvergeet alles (?:wat|van)\b|\bzapomnij o wszystkim\b|\bzapomen\w* (?:na )?vsechno\b"
     r"|\bunohda kaikki\b|\bher seyi unut\b|\blupakan (?:semua|segala)\b"
     r"|\bquen (?:het|tat ca|moi)\b",
     ("olvida", "esquec", "oubli", "vergiss", "dimentica", "vergeet", "zapomnij", "zapomen",
      "unohda", "her seyi", "lupakan", "quen")),
    (r"\bзабудь\w* (?:всё|все|обо всём|усе|про все)\b|ξ[εέ]χασ\w* (?:τα )?π[αά]ντα"  # noqa: RUF001 (Greek, Cyrillic)
     r"|שכח (?:את )?הכל|(?:انس|إنس|تجاهل)\s?(?:كل|جميع) (?:ما|الذي)"
     r"|忘(?:记|記|掉)(?:之前|以前|上面)?(?:的)?(?:所有|一切)|모든 것을 잊|सब (?:कुछ )?भूल जाओ",
     ("забудь", "ξέχασ", "ξεχασ", "שכח", "انس", "إنس", "تجاهل", "忘", "잊", "भूल")),
]

_SYSTEM_PROMPT: list[_Alternative] = [
    (r"\b(?:prompt del sistema|prompt de sistema|prompt (?:du )?systeme|systemprompt\w*"
     r"|systemanweisung\w*|prompt di sistema|systeemprompt|prompt sistem|sistem istemi\w*"
     r"|sistem mesaj\w*|loi nhac he thong|rendszerprompt\w*|rendszeruzenet\w*"
     r"|systemmeddelelse|jarjestelmakehot\w*|jarjestelmaohje\w*|arahan sistem"
     r"|prompt(?:ul)? (?:de|al) sistem\w*)\b",
     ("prompt", "system", "sistem", "loi nhac", "rendszer", "jarjestelma", "arahan")),
    (r"\b(?:instrucciones|instruccions) (?:secretas|ocultas|del sistema|iniciales|secretes"
     r"|ocultes)|\binstructions (?:secretes|cachees|systeme|initiales)\b"
     r"|\bistruzioni (?:nascoste|segrete|di sistema|iniziali)\b|\bgeheimen? anweisungen\b"
     r"|\binstrucoes (?:secretas|ocultas|do sistema)\b|\binstructiuni\w* (?:secrete|ascunse"
     r"|de sistem)|\bsystemov\w* (?:prompt\w*|pokyn\w*|instrukc\w*|zprav\w*)"
     r"|\b(?:prompt\w* systemow\w*|ukryt\w* instrukcj\w*|instrukcj\w* systemow\w*)"
     r"|\bsalai\w* ohje\w*|\brejtett utasitas\w*|\b(?:skjulte instruk\w*|dolda instruktioner)"
     r"|\b(?:instruksi (?:rahasia|tersembunyi|sistem)|maagizo (?:yako )?ya (?:siri|mfumo))"
     r"|\b(?:lihim|nakatagong) (?:na )?(?:tagubilin|utos)",
     ("instrucc", "instructions", "istruzioni", "anweisung", "instrucoes", "instructiuni",
      "systemov", "systemow", "instrukcj", "ohje", "utasitas", "instruk", "instruktioner",
      "maagizo", "tagubilin", "utos")),
    (r"системн\w* (?:промпт\w*|подсказк\w*|инструкци\w*|інструкці\w*|підказк\w*)"
     r"|(?:κρυφ|μυστικ)\w* οδηγ\w*|(?:μήνυμα|προτροπ\w*) συστ[ηή]ματος"
     r"|(?:הנחיות|הוראות) (?:ה)?(?:מערכת|סודיות|נסתרות)|موجه النظام|پیام سیستمی"
     r"|دستورالعمل\S* (?:سیستم|مخفی)|پرامپت سیستم|سسٹم پرامپٹ|सिस्टम प्रॉम्प्ट"
     r"|छिप\S* (?:हुआ |हुए )?(?:प्रॉम्प्ट|निर्देश)|সিস্টেম প্রম্পট|พรอมต์ระบบ|คำสั่งระบบ|คำสั่งลับ"
     r"|系统提示|系統提示|システムプロンプト|시스템 프롬프트",
     ("системн", "κρυφ", "μυστικ", "συστ", "הנחיות", "הוראות", "موجه", "پیام", "دستورالعمل",
      "پرامپت", "سسٹم", "सिस्टम", "छिप", "সিস্টেম", "พรอมต์ระบบ", "คำสั่งระบบ", "คำสั่งลับ",
      "系统提示", "系統提示", "システムプロンプト", "시스템 프롬프트")),
]

_REVEAL: list[_Alternative] = [
    (r"\b(?:muestra\w*|revela\w*|dime|ensena\w*|montre\w*|revele\w*|affiche\w*|donne-moi"
     r"|zeig\w*|gib|ausgeben|wiederhole|mostra\w*|dimmi|rivela\w*|mostre|geef|toon|visa"
     r"|tampilkan|cho toi xem|goster|soyle|napis|ukaz|zobraz|vypis|prozrad|rekni|povedz"
     r"|wypisz|pokaz|ujawnij|powiedz|kerro|nayta|paljasta|tulosta|niambie|onyesha|fichua"
     r"|ipakita|sabihin|ibunyag|afiseaza|arata|dezvaluie|spune-mi|ird ki|mutasd|arulde? el"
     r"|fortael|fortell|beratta|avsloja|skriv ut|digues|dedahkan|tunjukkan|beritahu)\b",
     ("muestra", "revela", "dime", "ensena", "montre", "revele", "affiche", "donne-moi",
      "zeig", "gib", "ausgeben", "wiederhole", "mostra", "dimmi", "rivela", "mostre", "geef",
      "toon", "visa", "tampilkan", "cho toi xem", "goster", "soyle", "napis", "ukaz", "zobraz",
      "vypis", "prozrad", "rekni", "povedz", "wypisz", "pokaz", "ujawnij", "powiedz", "kerro",
      "nayta", "paljasta", "tulosta", "niambie", "onyesha", "fichua", "ipakita", "sabihin",
      "ibunyag", "afiseaza", "arata", "dezvaluie", "spune-mi", "ird ki", "mutasd", "arul",
      "fortael", "fortell", "beratta", "avsloja", "skriv ut", "digues", "dedahkan",
      "tunjukkan", "beritahu")),
    (r"\b(?:покажи|раскрой|выведи|повтори|розкрий|скажи)\b|δε[ιί]ξε|αποκ[αά]λυψε"
     r"|חשוף|הצג|הראה|תגיד|บอก|แสดง|เปิดเผย|نشان بده|فاش کن|دکھائیں|دکھاؤ|بتائیں|بتاؤ"
     r"|اكشف|أظهر|اعرض|أخبرني|बताओ|दिखा|দেখাও|বলো|告诉我|显示|顯示|输出|輸出|打印|说出"
     r"|表示して|教えて|出力|보여|알려|출력",
     ("покажи", "раскрой", "выведи", "повтори", "розкрий", "скажи", "δείξε", "δειξε",
      "αποκ", "חשוף", "הצג", "הראה", "תגיד", "บอก", "แสดง", "เปิดเผย", "نشان", "فاش",
      "دکھا", "بتا", "اكشف", "أظهر", "اعرض", "أخبرني", "बताओ", "दिखा", "দেখাও", "বলো",
      "告诉我", "显示", "顯示", "输出", "輸出", "打印", "说出", "表示して", "教えて", "出力",
      "보여", "알려", "출력")),
]

_NO_RESTRICTIONS: list[_Alternative] = [
    (r"\b(?:sin|sans|ohne|senza|sem|zonder|bez|utan|tanpa|ilman|walang|fara|uden|uten"
     r"|bila)\s(?:\S+\s){0,3}?(?:restriccion\w*|filtros?|limites?|reglas?|censura"
     r"|restrictions?|regles?|filtres?|censure|einschrankungen|regeln|filter|zensur|grenzen"
     r"|filtri|restrizioni|limiti|regole|restricoes|regras|beperkingen|regels|ograniczen\w*"
     r"|omezeni|pravidel|begransningar|batasan|aturan|sensor|sekatan|rajoituksia|sensuuria"
     r"|limitasyon|patakaran|restrictii|reguli|cenzura|begrænsninger|begrensninger|censur"
     r"|restriccions|advertencias|avisos|avertissements|warnungen|avvertenze|ethik|etica)\b",
     ("sin ", "sans ", "ohne ", "senza ", "sem ", "zonder ", "bez ", "utan ", "tanpa ",
      "ilman ", "walang ", "fara ", "uden ", "uten ", "bila ")),
    (r"\bno (?:tienes|tengas|hay) (?:\S+\s)?(?:restricciones|limites|reglas|filtros)\b"
     r"|\b(?:keine|aucune?|nessun[ao]?|nenhuma?|geen|ingen|zadn[eay]\w*)\s(?:\S+\s)?"
     r"(?:einschrankungen|regeln|grenzen|filter|zensur|limites?|restrictions?|regles?"
     r"|censure|filtres?|restrizion[ei]|regol[ae]|filtr[oi]|censura|restricao|restricoes"
     r"|regras?|beperkingen|regels|filters|censuur|begransningar|regler|restriktioner"
     r"|begrensninger|omezeni|pravidla|filtry|ograniczen\w*)\b"
     r"|\b(?:sinirsiz|kisitlamasiz|sansursuz)\b|\bkorlatozasok nelkul\b",
     ("no tienes", "no tengas", "no hay", "keine", "aucun", "nessun", "nenhum", "geen",
      "ingen", "zadn", "sinirsiz", "kisitlamasiz", "sansursuz", "nelkul", "sense ")),
    (r"без (?:\S+\s)?(?:ограничени\w*|правил\w*|цензур\w*|фильтр\w*|обмежен\w*)"
     r"|χωρ[ιί]ς (?:\S+\s)?(?:περιορισμο\w*|καν[οό]ν\w*|λογοκρισ[ιί]\w*)"  # noqa: RUF001 (Greek, Cyrillic)
     r"|(?:בלי|ללא) (?:\S+\s)?(?:הגבלות|כללים|צנזורה)"
     r"|بدون (?:\S+\s)?(?:محدودیت|قید|سانسور|قيود|رقابة|حدود)"
     r"|बिना (?:किसी )?(?:प्रतिबंध|सीमा|नियम)|ไม่มีข้อจำกัด|bila (?:vikwazo|sheria|mipaka)"
     r"|没有任何\S{0,2}(?:限制|规则|約束|约束|过滤|审查)|不受任何\S{0,4}(?:约束|限制)|无限制"
     r"|制限なし|制限なく|制限のない|制約のない|検閲なし|제한 없|제한이 없|검열 없",
     ("без", "χωρ", "בלי", "ללא", "بدون", "बिना", "ไม่มีข้อจำกัด", "bila ", "没有任何",
      "不受任何", "无限制", "制限", "制約", "検閲", "제한", "검열")),
]

# A persona for the model in another language: "ahora eres LibreGPT, una IA", "tu es une IA".
_MODEL_NOUN = (
    r"(?:ia|ki|ai|bot|chatbot|asistente|assistant|assistent|assistente|modelo|modell|modele"
    r"|ии|ші|бот|人工智能|ai|ボット|인공지능|الذكاء الاصطناعي|एआई)"
)
_PERSONA: list[_Alternative] = [
    (r"\b(?:eres|sei|du bist|tu es|t'es|voce e|ty jestes|jsi|olet|du er|du ar|kamu adalah"
     r"|anda adalah|jij bent|je bent|ban la|sen bir|ikaw ay|wewe ni|esti)\b(?:\s\S+){0,5}?"
     rf"\s(?:una?\s|un\s|une\s|eine?\s|een\s|an?\s)?(?:\S+\s)?{_MODEL_NOUN}\b",
     ("eres", "sei", "du bist", "tu es", "t'es", "voce e", "jestes", "jsi", "olet", "du er",
      "du ar", "kamu adalah", "anda adalah", "bent", "ban la", "sen bir", "ikaw ay",
      "wewe ni", "esti")),
    (r"\b(?:finge|finja|fingi|fais semblant|faites semblant|tu fais semblant|tu\s?finges"
     r"|fai finta|fate finta|stell dir vor|tu so, als|tun sie so|doe alsof|udawaj"
     r"|predstiraj|pretvaraj|kuvittele)\b(?:\s\S+){0,6}?"
     rf"\s(?:\S+\s)?{_MODEL_NOUN}\b",
     ("fing", "semblant", "finta", "stell dir vor", "tu so", "tun sie so", "doe alsof",
      "udawaj", "predstiraj", "pretvaraj", "kuvittele")),
    (r"\b(?:ты|ти|представь,? что ты|уяви,? що ти)\s(?:\S+\s){0,3}?\b(?:ии|ші|бот|ассистент)\b"
     r"|(?:你是|你现在是|假设你是|假装你是|想象你是)[^。!?\n]{0,12}?(?:ai|人工智能|助手|机器人)"
     r"|(?:あなたは|君は)[^。!?\n]{0,12}?(?:ai|ボット|アシスタント)"
     r"|(?:너는|넌|당신은)[^.!?\n]{0,12}?(?:ai|인공지능|봇|챗봇)",
     ("ты", "ти", "представь", "уяви", "你是", "你现在是", "假设你是", "假装你是", "想象你是",
      "あなたは", "君は", "너는", "넌", "당신은")),
]

_FROM_NOW_ON: list[_Alternative] = [
    (r"\b(?:a partir de ahora|desde ahora|de ahora en adelante|a partir de maintenant"
     r"|desormais|dorenavant|ab jetzt|ab sofort|von nun an|d'ora in poi|da ora in poi"
     r"|da adesso in poi|a partir de agora|de agora em diante|vanaf nu|voortaan|od teraz"
     r"|od ted|odted|mulai sekarang|mulai saat ini|mulai dari sekarang|bundan sonra"
     r"|tasta lahtien|nyt lahtien|fran och med nu|fra nu af|fra na av|tu bay gio"
     r"|ke tu bay gio)\b",
     ("a partir de", "desde ahora", "de ahora en", "desormais", "dorenavant", "ab jetzt",
      "ab sofort", "von nun an", "d'ora in", "da ora in", "da adesso", "de agora em",
      "vanaf nu", "voortaan", "od teraz", "od ted", "odted", "mulai", "bundan sonra",
      "lahtien", "fran och med", "fra nu", "fra na", "tu bay gio")),
    (r"с этого момента|отныне|відтепер|з цього моменту|从现在开始|從現在開始|从现在起"  # noqa: RUF001 (Greek, Cyrillic)
     r"|今から|これから|이제부터|지금부터|من الآن فصاعد|מעכשיו|अब से",
     ("с этого", "отныне", "відтепер", "з цього", "从现在", "從現在", "今から", "これから",  # noqa: RUF001 (Greek, Cyrillic)
      "이제부터", "지금부터", "من الآن", "מעכשיו", "अब से")),
]

_NEVER_REFUSE: list[_Alternative] = [
    (r"\b(?:nunca se niega\w*|nunca te niegues|nunca rechaz\w*|sin negarte|sin rechazar"
     r"|ne refuse jamais|jamais refuser|sans refuser|niemals ablehn\w*|ohne abzulehnen"
     r"|lehnst nie\w* ab|mai rifiut\w*|senza rifiutare|nunca recus\w*|sem recusar"
     r"|zonder te weigeren|weiger nooit|bez odmowy|nigdy nie odmawiaj|tanpa menolak"
     r"|jangan (?:pernah )?menolak|asla reddetme)\b",
     ("nunca", "sin negarte", "sin rechazar", "jamais", "sans refuser", "niemals",
      "abzulehnen", "lehnst nie", "mai rifiut", "senza rifiutare", "sem recusar",
      "weiger", "bez odmowy", "nigdy nie", "menolak", "asla")),
    (r"\b(?:responde a (?:todo|cualquier)|reponds a tout|beantwort\w* jede frage"
     r"|rispondi a (?:tutto|qualsiasi)|responda (?:a )?(?:tudo|qualquer)|beantwoord alles"
     r"|jawab semua pertanyaan)\b",
     ("responde a", "reponds a", "jede frage", "rispondi a", "responda", "beantwoord alles",
      "jawab semua")),
    (r"никогда не отказ\w*|без отказ\w*|отвеча\w* на любые (?:вопросы|запросы)"
     r"|不要拒绝|不拒绝|绝不拒绝|從不拒絕|回答(?:任何|所有)问题|断らない|拒否しない|拒否せず"
     r"|거절하지",
     ("никогда", "без отказ", "на любые", "拒绝", "拒絕", "回答", "断らない", "拒否", "거절")),
]

_DEVELOPER_MODE: list[_Alternative] = [
    (r"\bmode (?:developpeur|dieu|sans restrictions?)\b|\b(?:entwickler|gott)modus\b"
     r"|\bmodo (?:desarrollador|dios|sin restricciones|sviluppatore|desenvolvedor)\b"
     r"|режим\w* разработчика|开发者模式|開発者モード|개발자 모드",
     ("mode ", "modus", "modo ", "режим", "开发者模式", "開発者モード", "개발자 모드")),
]

_ADDRESSED_TO_AI: list[_Alternative] = [
    (r"\b(?:nota|mensaje|instrucci\w*|aviso|mensagem|messaggio|note|message|consigne|hinweis"
     r"|nachricht|anweisung)\s(?:para|pour|a|an|fur|per)\s(?:el|la|los|las|cualquier|o|l'"
     r"|le|den|die|das|jeden|jede|il|qualquer)?\s?(?:asistente|assistant|assistente"
     r"|assistenten|ia|ki|modelo|modele|modell|modello|agente|agent|agenten|bot)\b",
     ("para", "pour", " a ", " an ", "fur", " per ")),
    (r"примечание для (?:ии|ассистента|модели|бота)|给(?:ai|助手|模型|人工智能)的(?:提示|说明|指令)"
     r"|aiへの(?:指示|メモ)",
     ("примечание", "给", "aiへの")),
]

_SEND_OUT: list[_Alternative] = [
    (r"\b(?:reenvi\w*|envi(?:a|e|ar|alo|ale|alos)|manda(?:r|le|lo|los|me)?|weiterleit\w*"
     r"|sende(?:n|t)?|schick\w*|transfere\w*"
     r"|envoie\w*|envoyer|inoltra\w*|invia\w*|encaminh\w*|stuur\w*|przeslij|wyslij|kirim\w*"
     r"|teruskan|lahetä|laheta)\b[^\n]{0,80}?(?:\S+@\S+\.\w|https?://)",
     ("reenvi", "envi", "manda", "weiterleit", "sende", "schick", "transfere", "envoie",
      "envoyer", "inoltra", "invia", "encaminh", "stuur", "przeslij", "wyslij", "kirim",
      "teruskan", "lahe")),
    (r"(?:перешли|отправь|пересылай|转发|发送|送って|전달|보내)[^\n]{0,80}?(?:\S+@\S+\.\w|https?://)",
     ("перешли", "отправь", "пересылай", "转发", "发送", "送って", "전달", "보내")),
]

MULTILINGUAL_RULES: Final[tuple[RuleSpec, ...]] = (
    _rule("multilingual.ignore_instructions", 0.7, _IGNORE_INSTRUCTIONS),
    _rule("multilingual.forget_everything", 0.6, _FORGET_EVERYTHING),
    _rule("multilingual.system_prompt", 0.35, _SYSTEM_PROMPT),
    _rule("multilingual.reveal", 0.3, _REVEAL),
    _rule("multilingual.no_restrictions", 0.35, _NO_RESTRICTIONS),
    _rule("multilingual.persona_ai", 0.25, _PERSONA),
    _rule("multilingual.from_now_on", 0.2, _FROM_NOW_ON),
    _rule("multilingual.never_refuse", 0.35, _NEVER_REFUSE),
    _rule("multilingual.developer_mode", 0.35, _DEVELOPER_MODE),
    _rule("multilingual.addressed_to_ai", 0.35, _ADDRESSED_TO_AI),
    _rule("multilingual.send_out", 0.4, _SEND_OUT),
)
# fmt: on
