//! What a schema says, after parsing: packages of structs, enums and services.
//! The checker ([`crate::check`]) resolves every named type before generators see it.

use std::path::PathBuf;

use crate::diag::Span;

/// One schema file: one package.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    /// The file it came from.
    pub path: PathBuf,
    /// Its text (for diagnostics and `describe`).
    pub source: String,
    /// `package NAME;`
    pub name: String,
    /// Doc comment above `package`.
    pub doc: Vec<String>,
    /// Structs, in file order.
    pub structs: Vec<Struct>,
    /// String enums, in file order.
    pub enums: Vec<Enum>,
    /// Services, in file order.
    pub services: Vec<Service>,
    /// Typed one-way message streams over a `Bus`, in file order.
    pub topics: Vec<Topic>,
}

/// `struct Name { fields }`: a MessagePack map keyed by field name.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    /// Its name.
    pub name: String,
    /// Its doc comment lines.
    pub doc: Vec<String>,
    /// Its fields, in declaration order.
    pub fields: Vec<Field>,
    /// Field names retired for good (`reserved a, b;`).
    pub reserved: Vec<String>,
    /// Where the name is.
    pub span: Span,
}

/// `name: T`, `name?: T` or `name: T = default`.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its name on the wire.
    pub name: String,
    /// Its doc comment lines.
    pub doc: Vec<String>,
    /// Its type.
    pub ty: Type,
    /// `name?:` the key may be absent or nil.
    pub optional: bool,
    /// `= literal`: what a reader assumes when the key is absent.
    pub default: Option<Literal>,
    /// Where the name is.
    pub span: Span,
}

/// A default value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An integer (negative with a leading `-`).
    Int(i128),
    /// A float.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A string, or an enum value's name.
    Str(String),
}

/// `enum Name { a, b, c }`: a string on the wire; readers keep values they do not know.
#[derive(Debug, Clone, PartialEq)]
pub struct Enum {
    /// Its name.
    pub name: String,
    /// Its doc comment lines.
    pub doc: Vec<String>,
    /// Its values, as they appear on the wire.
    pub values: Vec<String>,
    /// Where the name is.
    pub span: Span,
}

/// A type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    /// An integer: signed or not, and its width in bits.
    Int {
        /// Signed?
        signed: bool,
        /// 8, 16, 32 or 64.
        bits: u8,
    },
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `bool`.
    Bool,
    /// `string`.
    String,
    /// `bytes`: MessagePack bin inside a struct; raw, with no codec, as a whole request or reply.
    Bytes,
    /// `list<T>`.
    List(Box<Type>),
    /// `map<string, T>`.
    Map(Box<Type>),
    /// A struct of the same package.
    Struct(String),
    /// An enum of the same package.
    Enum(String),
    /// A name not resolved yet (only before [`crate::check`]).
    Named(String, Span),
}

impl Type {
    /// The type as the schema spells it.
    pub fn spelling(&self) -> String {
        match self {
            Type::Int { signed, bits } => format!("{}{bits}", if *signed { 'i' } else { 'u' }),
            Type::F32 => "f32".into(),
            Type::F64 => "f64".into(),
            Type::Bool => "bool".into(),
            Type::String => "string".into(),
            Type::Bytes => "bytes".into(),
            Type::List(t) => format!("list<{}>", t.spelling()),
            Type::Map(t) => format!("map<string, {}>", t.spelling()),
            Type::Struct(n) | Type::Enum(n) | Type::Named(n, _) => n.clone(),
        }
    }
}

/// `rpc name(Req) -> Resp = msg_type;` (one request, one reply) or
/// `oneway rpc name(Req) = msg_type;` (no reply).
#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    /// Its name.
    pub name: String,
    /// Its doc comment lines.
    pub doc: Vec<String>,
    /// The request type (`bytes`: raw).
    pub request: Type,
    /// The reply type (`bytes`: raw); unused for a oneway method.
    pub response: Type,
    /// `oneway rpc`: no reply; callers send with correlation id 0 and do not wait.
    pub oneway: bool,
    /// `-> stream T`: any number of replies of type `response`, then an end.
    pub stream: bool,
    /// Its msg_type, unique across every schema.
    pub msg_type: u16,
    /// Where the name is.
    pub span: Span,
    /// Where the msg_type is.
    pub msg_type_span: Span,
}

/// `error name = code;`: an application error code a method may answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorCode {
    /// Its name.
    pub name: String,
    /// Its doc comment lines.
    pub doc: Vec<String>,
    /// Its code in the 0xFFFF error reply (100 and up; lower codes are the framework's).
    pub code: u32,
    /// Where the name is.
    pub span: Span,
}

/// `service Name { methods, errors }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Its name.
    pub name: String,
    /// Its doc comment lines.
    pub doc: Vec<String>,
    /// Its methods, in declaration order.
    pub methods: Vec<Method>,
    /// Its application error codes.
    pub errors: Vec<ErrorCode>,
    /// msg_types retired for good (`reserved 3, 4;`).
    pub reserved: Vec<u16>,
    /// Where the name is.
    pub span: Span,
}

/// `topic name: T = msg_type;`: messages of type `T` sent one way over a `Bus`, carrying
/// `msg_type` (route 0) so a receiver tells the topics apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    /// Its name.
    pub name: String,
    /// Its doc comment lines.
    pub doc: Vec<String>,
    /// The message type (`bytes`: raw).
    pub ty: Type,
    /// The msg_type its messages carry, unique across every schema.
    pub msg_type: u16,
    /// Where the name is.
    pub span: Span,
    /// Where the msg_type is.
    pub msg_type_span: Span,
}

/// The msg_type of the generated `describe` method every service answers.
pub const DESCRIBE_MSG_TYPE: u16 = 0x7FFF;

/// The lowest application error code (0..=99 belong to the framework).
pub const FIRST_APP_ERROR_CODE: u32 = 100;
