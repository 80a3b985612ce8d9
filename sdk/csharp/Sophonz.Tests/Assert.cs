using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Threading.Tasks;

namespace Sophonz.Tests
{
    public sealed class AssertionException : Exception
    {
        public AssertionException(string message) : base(message) { }
    }

    public static class Assert
    {
        public static void Equal<T>(T expected, T actual, string what = "value")
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
                throw new AssertionException(what + ": expected <" + expected + ">, got <" + actual + ">");
        }

        public static void True(bool condition, string what)
        {
            if (!condition) throw new AssertionException("expected true: " + what);
        }

        /// <summary>Same JSON value, whatever the key order: both sides are serialized with
        /// sorted keys (numbers as the SDK writes them, so 600 and 600.0 are equal).</summary>
        public static void JsonEqual(object expected, object actual, string what = "JSON")
        {
            var e = Canonical(expected);
            var a = Canonical(actual);
            if (e != a) throw new AssertionException(what + ":\n  expected " + e + "\n  got      " + a);
        }

        public static string Canonical(object value)
        {
            var sb = new StringBuilder();
            Write(sb, Json.Parse(Json.Serialize(value)));
            return sb.ToString();
        }

        private static void Write(StringBuilder sb, object value)
        {
            var obj = value as JsonObject;
            var arr = value as JsonArray;
            if (obj != null)
            {
                sb.Append('{');
                var first = true;
                foreach (var key in obj.Keys.OrderBy(k => k, StringComparer.Ordinal))
                {
                    if (!first) sb.Append(',');
                    first = false;
                    sb.Append(Json.Serialize(key)).Append(':');
                    Write(sb, obj[key]);
                }
                sb.Append('}');
            }
            else if (arr != null)
            {
                sb.Append('[');
                for (var i = 0; i < arr.Count; i++)
                {
                    if (i > 0) sb.Append(',');
                    Write(sb, arr[i]);
                }
                sb.Append(']');
            }
            else if (value is long) sb.Append(((double)(long)value).ToString("R", CultureInfo.InvariantCulture));
            else sb.Append(Json.Serialize(value));
        }

        public static T Throws<T>(Action call) where T : Exception
        {
            try
            {
                call();
            }
            catch (T e)
            {
                return e;
            }
            catch (Exception e)
            {
                throw new AssertionException("expected " + typeof(T).Name + ", got " + e);
            }
            throw new AssertionException("expected " + typeof(T).Name + ", nothing was thrown");
        }

        public static async Task<T> ThrowsAsync<T>(Func<Task> call) where T : Exception
        {
            try
            {
                await call();
            }
            catch (T e)
            {
                return e;
            }
            catch (Exception e)
            {
                throw new AssertionException("expected " + typeof(T).Name + ", got " + e);
            }
            throw new AssertionException("expected " + typeof(T).Name + ", nothing was thrown");
        }

        /// <summary>The error as one JSON object, to compare all of its fields at once.</summary>
        public static JsonObject Error(SophonzException e)
        {
            var o = new JsonObject();
            o["status"] = e.Status;
            o["error"] = e.Error;
            o["message"] = e.Message;
            o["field"] = e.Field;
            o["retry_after"] = e.RetryAfter;
            return o;
        }

        public static JsonObject Error(int status, string error, string message, string field = null, int? retryAfter = null)
        {
            return Error(new SophonzException(status, error, message, field, retryAfter));
        }
    }
}
