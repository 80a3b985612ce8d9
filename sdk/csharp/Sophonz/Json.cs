// A small JSON reader/writer, so the SDK needs no package: answers are parsed into
// JsonObject (keys in the server's order), JsonArray, string, long (integers), double,
// bool and null; request bodies may be any of those, dictionaries, lists, DateTime /
// DateTimeOffset (sent as ISO 8601 UTC) or plain objects such as anonymous types
// (their public properties).
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Reflection;
using System.Text;

namespace Sophonz
{
    /// <summary>A JSON object: an ordered string-keyed dictionary. ToString() gives its JSON.</summary>
    public sealed class JsonObject : IDictionary<string, object>
    {
        private readonly Dictionary<string, object> values = new Dictionary<string, object>();
        private readonly List<string> order = new List<string>();

        public object this[string key]
        {
            get { return values[key]; }
            set
            {
                if (!values.ContainsKey(key)) order.Add(key);
                values[key] = value;
            }
        }

        public ICollection<string> Keys { get { return order.AsReadOnly(); } }
        public ICollection<object> Values { get { return order.ConvertAll(k => values[k]).AsReadOnly(); } }
        public int Count { get { return order.Count; } }
        public bool IsReadOnly { get { return false; } }

        public void Add(string key, object value)
        {
            values.Add(key, value);
            order.Add(key);
        }

        public bool ContainsKey(string key) { return values.ContainsKey(key); }

        public bool Remove(string key)
        {
            if (!values.Remove(key)) return false;
            order.Remove(key);
            return true;
        }

        public bool TryGetValue(string key, out object value) { return values.TryGetValue(key, out value); }
        public void Add(KeyValuePair<string, object> item) { Add(item.Key, item.Value); }

        public void Clear()
        {
            values.Clear();
            order.Clear();
        }

        public bool Contains(KeyValuePair<string, object> item)
        {
            object value;
            return values.TryGetValue(item.Key, out value) && Equals(value, item.Value);
        }

        public void CopyTo(KeyValuePair<string, object>[] array, int arrayIndex)
        {
            foreach (var pair in this) array[arrayIndex++] = pair;
        }

        public bool Remove(KeyValuePair<string, object> item) { return Contains(item) && Remove(item.Key); }

        public IEnumerator<KeyValuePair<string, object>> GetEnumerator()
        {
            foreach (var key in order) yield return new KeyValuePair<string, object>(key, values[key]);
        }

        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }

        /// <summary>The value of <paramref name="key"/>, or null when it is missing.</summary>
        public object Get(string key)
        {
            object value;
            return values.TryGetValue(key, out value) ? value : null;
        }

        public string GetString(string key) { return (string)Get(key); }
        public JsonObject GetObject(string key) { return (JsonObject)Get(key); }
        public JsonArray GetArray(string key) { return (JsonArray)Get(key); }
        public bool? GetBoolean(string key) { return (bool?)Get(key); }
        public long? GetInt64(string key) { return (long?)Get(key); }

        /// <summary>A number as double, whether the JSON wrote it as an integer or not.</summary>
        public double? GetDouble(string key)
        {
            var value = Get(key);
            if (value == null) return null;
            return value is long ? (long)value : (double)value;
        }

        public override string ToString() { return Json.Serialize(this); }
    }

    /// <summary>A JSON array. ToString() gives its JSON.</summary>
    public sealed class JsonArray : List<object>
    {
        public JsonArray() { }
        public JsonArray(IEnumerable<object> items) : base(items) { }
        public JsonObject GetObject(int index) { return (JsonObject)this[index]; }
        public override string ToString() { return Json.Serialize(this); }
    }

    /// <summary>JSON text to and from .NET values (see the file's header for the mapping).</summary>
    public static class Json
    {
        public static string Serialize(object value)
        {
            var sb = new StringBuilder();
            Write(sb, value, 0);
            return sb.ToString();
        }

        /// <summary>Parses one JSON value; FormatException on anything else.</summary>
        public static object Parse(string text)
        {
            if (text == null) throw new ArgumentNullException("text");
            var reader = new Reader(text);
            reader.SkipSpace();
            var value = reader.Value(0);
            reader.SkipSpace();
            if (reader.Position != text.Length) throw reader.Fail("unexpected text after the value");
            return value;
        }

        /// <summary>UTC, milliseconds, "Z": the form the server answers with. A DateTime of
        /// unspecified kind is taken as UTC (as the server takes a time without an offset).</summary>
        public static string FormatTime(DateTime value)
        {
            if (value.Kind == DateTimeKind.Local) value = value.ToUniversalTime();
            return value.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
        }

        public static string FormatTime(DateTimeOffset value) { return FormatTime(value.UtcDateTime); }

        private const int MaxDepth = 256;  // deep enough for any answer, shallow enough for the stack

        private static void Write(StringBuilder sb, object value, int depth)
        {
            if (depth > MaxDepth) throw new ArgumentException("JSON nested deeper than " + MaxDepth + " levels (a cycle?)");
            if (value == null) { sb.Append("null"); return; }
            if (value is string) { WriteString(sb, (string)value); return; }
            if (value is bool) { sb.Append((bool)value ? "true" : "false"); return; }
            if (value is char) { WriteString(sb, value.ToString()); return; }
            if (value is double || value is float)
            {
                var d = Convert.ToDouble(value, CultureInfo.InvariantCulture);
                if (double.IsNaN(d) || double.IsInfinity(d)) throw new ArgumentException("JSON has no NaN or infinity");
                sb.Append(d.ToString("R", CultureInfo.InvariantCulture));
                return;
            }
            if (value is int || value is long || value is short || value is byte || value is sbyte || value is uint
                || value is ulong || value is ushort || value is decimal)
            {
                sb.Append(Convert.ToString(value, CultureInfo.InvariantCulture));
                return;
            }
            if (value is DateTime) { WriteString(sb, FormatTime((DateTime)value)); return; }
            if (value is DateTimeOffset) { WriteString(sb, FormatTime((DateTimeOffset)value)); return; }
            if (value is Enum) { WriteString(sb, value.ToString()); return; }
            var pairs = value as IEnumerable<KeyValuePair<string, object>>;
            if (pairs != null) { WriteObject(sb, pairs, depth); return; }
            var dictionary = value as IDictionary;
            if (dictionary != null)
            {
                var entries = new List<KeyValuePair<string, object>>();
                foreach (DictionaryEntry entry in dictionary)
                    entries.Add(new KeyValuePair<string, object>(Convert.ToString(entry.Key, CultureInfo.InvariantCulture), entry.Value));
                WriteObject(sb, entries, depth);
                return;
            }
            var sequence = value as IEnumerable;
            if (sequence != null)
            {
                sb.Append('[');
                var first = true;
                foreach (var item in sequence)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    Write(sb, item, depth + 1);
                }
                sb.Append(']');
                return;
            }
            // Any other object (an anonymous type, a class of the caller's): its public
            // readable instance properties, in declaration order.
            var properties = new List<KeyValuePair<string, object>>();
            foreach (var property in value.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (!property.CanRead || property.GetIndexParameters().Length > 0) continue;
                properties.Add(new KeyValuePair<string, object>(property.Name, property.GetValue(value, null)));
            }
            WriteObject(sb, properties, depth);
        }

        private static void WriteObject(StringBuilder sb, IEnumerable<KeyValuePair<string, object>> pairs, int depth)
        {
            sb.Append('{');
            var first = true;
            foreach (var pair in pairs)
            {
                if (!first) sb.Append(',');
                first = false;
                WriteString(sb, pair.Key);
                sb.Append(':');
                Write(sb, pair.Value, depth + 1);
            }
            sb.Append('}');
        }

        private static void WriteString(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (var c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }

        private sealed class Reader
        {
            private readonly string text;
            public int Position;

            public Reader(string text) { this.text = text; }

            public FormatException Fail(string what)
            {
                return new FormatException("Invalid JSON at offset " + Position + ": " + what);
            }

            public void SkipSpace()
            {
                while (Position < text.Length && (text[Position] == ' ' || text[Position] == '\t'
                       || text[Position] == '\n' || text[Position] == '\r')) Position++;
            }

            private char Peek()
            {
                if (Position >= text.Length) throw Fail("unexpected end");
                return text[Position];
            }

            private void Expect(string word)
            {
                if (string.CompareOrdinal(text, Position, word, 0, word.Length) != 0) throw Fail("expected " + word);
                Position += word.Length;
            }

            public object Value(int depth)
            {
                if (depth > MaxDepth) throw Fail("nested deeper than " + MaxDepth + " levels");
                var c = Peek();
                switch (c)
                {
                    case '{': return Object(depth);
                    case '[': return Array(depth);
                    case '"': return String();
                    case 't': Expect("true"); return true;
                    case 'f': Expect("false"); return false;
                    case 'n': Expect("null"); return null;
                    default:
                        if (c == '-' || (c >= '0' && c <= '9')) return Number();
                        throw Fail("unexpected character '" + c + "'");
                }
            }

            private JsonObject Object(int depth)
            {
                var result = new JsonObject();
                Position++;
                SkipSpace();
                if (Peek() == '}') { Position++; return result; }
                while (true)
                {
                    SkipSpace();
                    if (Peek() != '"') throw Fail("expected a key");
                    var key = String();
                    SkipSpace();
                    if (Peek() != ':') throw Fail("expected ':'");
                    Position++;
                    SkipSpace();
                    result[key] = Value(depth + 1);  // a repeated key keeps the last value, as most parsers do
                    SkipSpace();
                    var c = Peek();
                    Position++;
                    if (c == '}') return result;
                    if (c != ',') { Position--; throw Fail("expected ',' or '}'"); }
                }
            }

            private JsonArray Array(int depth)
            {
                var result = new JsonArray();
                Position++;
                SkipSpace();
                if (Peek() == ']') { Position++; return result; }
                while (true)
                {
                    SkipSpace();
                    result.Add(Value(depth + 1));
                    SkipSpace();
                    var c = Peek();
                    Position++;
                    if (c == ']') return result;
                    if (c != ',') { Position--; throw Fail("expected ',' or ']'"); }
                }
            }

            private string String()
            {
                Position++;  // the opening quote
                var sb = new StringBuilder();
                while (true)
                {
                    var c = Peek();
                    Position++;
                    if (c == '"') return sb.ToString();
                    if (c < 0x20) { Position--; throw Fail("control character in a string"); }
                    if (c != '\\') { sb.Append(c); continue; }
                    var e = Peek();
                    Position++;
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            int code;
                            if (Position + 4 > text.Length || !int.TryParse(text.Substring(Position, 4), NumberStyles.AllowHexSpecifier,
                                    CultureInfo.InvariantCulture, out code)) throw Fail("bad \\u escape");
                            sb.Append((char)code);  // surrogate pairs arrive as two escapes and stay a pair
                            Position += 4;
                            break;
                        default: Position--; throw Fail("bad escape");
                    }
                }
            }

            private object Number()
            {
                var start = Position;
                if (text[Position] == '-') Position++;
                var digits = Position;
                while (Position < text.Length && text[Position] >= '0' && text[Position] <= '9') Position++;
                if (Position == digits) throw Fail("expected a digit");
                if (text[digits] == '0' && Position - digits > 1) throw Fail("leading zero");
                var integral = true;
                if (Position < text.Length && text[Position] == '.')
                {
                    integral = false;
                    Position++;
                    var frac = Position;
                    while (Position < text.Length && text[Position] >= '0' && text[Position] <= '9') Position++;
                    if (Position == frac) throw Fail("expected a digit after '.'");
                }
                if (Position < text.Length && (text[Position] == 'e' || text[Position] == 'E'))
                {
                    integral = false;
                    Position++;
                    if (Position < text.Length && (text[Position] == '+' || text[Position] == '-')) Position++;
                    var exp = Position;
                    while (Position < text.Length && text[Position] >= '0' && text[Position] <= '9') Position++;
                    if (Position == exp) throw Fail("expected an exponent");
                }
                var literal = text.Substring(start, Position - start);
                long whole;
                if (integral && long.TryParse(literal, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out whole))
                    return whole;
                return double.Parse(literal, NumberStyles.Float, CultureInfo.InvariantCulture);
            }
        }
    }
}
